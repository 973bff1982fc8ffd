package mcp

import (
	"log/slog"
	"strconv"
	"time"
)

// Options are the MCP server's settings; the environment variables are the
// ones Shipyard-Neo's MCP server reads (see FromEnv).
type Options struct {
	DefaultProfile       string        // SHIPYARD_DEFAULT_PROFILE (python-default)
	DefaultTTL           int           // SHIPYARD_DEFAULT_TTL, seconds (3600; 0 = no expiry)
	MaxToolTextChars     int           // SHIPYARD_MAX_TOOL_TEXT_CHARS (12000): longer texts are cut with a notice
	MaxWriteFileBytes    int           // SHIPYARD_MAX_WRITE_FILE_BYTES (5 MiB): write_file content
	MaxTransferFileBytes int64         // SHIPYARD_MAX_TRANSFER_FILE_BYTES (50 MiB): upload_file / download_file
	CallTimeout          time.Duration // SHIPYARD_SDK_CALL_TIMEOUT, seconds (600): one call to Bay
	// LocalFiles lets upload_file/download_file read and write local_path on
	// the machine the server runs on. True for the stdio command (the user's
	// machine); false inside Bay, where only content_base64 and returned
	// content are offered (a remote caller must never reach Bay's disk).
	LocalFiles bool
	Log        *slog.Logger
}

// DefaultOptions are the upstream defaults, with local files off.
func DefaultOptions() Options {
	return Options{
		DefaultProfile:       "python-default",
		DefaultTTL:           3600,
		MaxToolTextChars:     12000,
		MaxWriteFileBytes:    5 << 20,
		MaxTransferFileBytes: 50 << 20,
		CallTimeout:          600 * time.Second,
	}
}

// FromEnv reads the upstream MCP server's settings as it does: positive
// integers only (anything else keeps the default); SHIPYARD_DEFAULT_TTL may be 0.
func FromEnv(getenv func(string) string) Options {
	o := DefaultOptions()
	if v := getenv("SHIPYARD_DEFAULT_PROFILE"); v != "" {
		o.DefaultProfile = v
	}
	if n, err := strconv.Atoi(getenv("SHIPYARD_DEFAULT_TTL")); err == nil && n >= 0 {
		o.DefaultTTL = n
	}
	positive := func(name string, def int) int {
		if n, err := strconv.Atoi(getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	o.MaxToolTextChars = positive("SHIPYARD_MAX_TOOL_TEXT_CHARS", o.MaxToolTextChars)
	o.MaxWriteFileBytes = positive("SHIPYARD_MAX_WRITE_FILE_BYTES", o.MaxWriteFileBytes)
	o.MaxTransferFileBytes = int64(positive("SHIPYARD_MAX_TRANSFER_FILE_BYTES", int(o.MaxTransferFileBytes)))
	o.CallTimeout = time.Duration(positive("SHIPYARD_SDK_CALL_TIMEOUT", int(o.CallTimeout/time.Second))) * time.Second
	return o
}

// Endpoint returns the Bay URL and token from the environment, as upstream:
// SHIPYARD_ENDPOINT_URL or BAY_ENDPOINT, SHIPYARD_ACCESS_TOKEN or BAY_TOKEN.
func Endpoint(getenv func(string) string) (endpoint, token string) {
	endpoint = getenv("SHIPYARD_ENDPOINT_URL")
	if endpoint == "" {
		endpoint = getenv("BAY_ENDPOINT")
	}
	token = getenv("SHIPYARD_ACCESS_TOKEN")
	if token == "" {
		token = getenv("BAY_TOKEN")
	}
	return endpoint, token
}
