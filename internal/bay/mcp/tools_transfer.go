package mcp

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

type uploadIn struct {
	SandboxID     string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	LocalPath     string `json:"local_path,omitempty" jsonschema:"Absolute or relative path to the local file to upload (stdio server only: relative paths are resolved from the MCP server's working directory)."`
	SandboxPath   string `json:"sandbox_path,omitempty" jsonschema:"Target path in the sandbox workspace, relative to /workspace. If not provided, uses the local file's name."`
	ContentBase64 string `json:"content_base64,omitempty" jsonschema:"The file's bytes, base64-encoded, instead of local_path (needs sandbox_path). The only way over Bay's HTTP /mcp endpoint, which cannot read your files."`
}

type downloadIn struct {
	SandboxID   string `json:"sandbox_id" jsonschema:"The sandbox ID."`
	SandboxPath string `json:"sandbox_path" jsonschema:"File path in the sandbox, relative to /workspace."`
	LocalPath   string `json:"local_path,omitempty" jsonschema:"Local destination path (stdio server only). Absolute or relative to the MCP server's working directory. Parent directories will be created if needed. If not provided, saves to the current directory using the sandbox file's name. Over Bay's HTTP /mcp endpoint the file is returned in the result instead."`
}

func (t *tools) registerTransfer(srv *sdk.Server) {
	add(t, srv, "upload_file", "Upload a file to a sandbox workspace: a local file (read where the MCP server runs) "+
		"or bytes given as content_base64. Supports binary files (images, PDFs, archives, etc.). "+
		"Use this instead of write_file when dealing with binary content or existing local files.",
		t.uploadFile, nonEmpty("sandbox_id"))
	add(t, srv, "download_file", "Download a file from a sandbox workspace. The stdio server saves it locally "+
		"(where the MCP server runs); Bay's HTTP /mcp endpoint returns it in the result (images as images, "+
		"other files as an embedded resource). Supports binary files. "+
		"Use this instead of read_file when you need the actual file or when dealing with binary content.",
		t.downloadFile, nonEmpty("sandbox_id", "sandbox_path"))
}

func (t *tools) noLocalFiles() error {
	return badArg("local_path is not available through Bay's HTTP /mcp endpoint (the server cannot reach your files); " +
		"pass the bytes as content_base64 to upload_file, and omit local_path in download_file to get the file in the result")
}

// maxInline bounds a file carried inside an MCP message (base64 in JSON).
func (t *tools) maxInline() int64 { return min(t.opts.MaxTransferFileBytes, maxMCPBody*3/4) }

func (t *tools) uploadFile(ctx context.Context, in uploadIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if in.SandboxPath != "" {
		if err := checkPath("sandbox_path", in.SandboxPath); err != nil {
			return nil, err
		}
	}
	if in.ContentBase64 != "" {
		if in.SandboxPath == "" {
			return nil, badArg("field 'sandbox_path' is required with content_base64")
		}
		if int64(base64.StdEncoding.DecodedLen(len(in.ContentBase64))) > t.maxInline()+2 {
			return nil, badArg("file too large: exceeds limit of %d bytes for content_base64", t.maxInline())
		}
		data, err := base64.StdEncoding.DecodeString(in.ContentBase64)
		if err != nil {
			return nil, badArg("field 'content_base64' is not valid base64: %v", err)
		}
		res, err := t.bay.Upload(ctx, in.SandboxID, in.SandboxPath, bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		return text(fmt.Sprintf("File uploaded successfully.\n\n**Local:** (content_base64)\n**Sandbox:** `%s`\n**Size:** %d bytes",
			res.Path, len(data))), nil
	}
	if err := required("local_path", in.LocalPath); err != nil {
		return nil, err
	}
	if !t.opts.LocalFiles {
		return nil, t.noLocalFiles()
	}
	local, err := localPath(in.LocalPath)
	if err != nil {
		return nil, err
	}
	target := in.SandboxPath
	if target == "" {
		target = filepath.Base(local)
	}
	f, err := os.Open(local)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, badArg("local file not found: %s", local)
		}
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, badArg("local path is not a file: %s", local)
	}
	if st.Size() > t.opts.MaxTransferFileBytes {
		return nil, badArg("file too large: %d bytes exceeds limit of %d bytes", st.Size(), t.opts.MaxTransferFileBytes)
	}
	if _, err := t.bay.Upload(ctx, in.SandboxID, target, io.LimitReader(f, t.opts.MaxTransferFileBytes)); err != nil {
		return nil, err
	}
	t.log.InfoContext(ctx, "file_uploaded", "sandbox_id", in.SandboxID, "local", local, "sandbox", target, "size", st.Size())
	return text(fmt.Sprintf("File uploaded successfully.\n\n**Local:** `%s`\n**Sandbox:** `%s`\n**Size:** %d bytes", local, target, st.Size())), nil
}

func localPath(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", badArg("invalid local_path: null bytes not allowed")
	}
	if strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[2:])
		}
	}
	return filepath.Abs(p)
}

func (t *tools) downloadFile(ctx context.Context, in downloadIn) (*sdk.CallToolResult, error) {
	if err := checkSandboxID(in.SandboxID); err != nil {
		return nil, err
	}
	if err := checkPath("sandbox_path", in.SandboxPath); err != nil {
		return nil, err
	}
	if in.LocalPath != "" && !t.opts.LocalFiles {
		return nil, t.noLocalFiles()
	}
	body, err := t.bay.Download(ctx, in.SandboxID, in.SandboxPath)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	if t.opts.LocalFiles {
		return t.saveLocal(ctx, in, body)
	}
	limit := t.maxInline()
	data, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, badArg("downloaded file too large: exceeds limit of %d bytes for a file returned in the result", limit)
	}
	res := text(fmt.Sprintf("File downloaded successfully.\n\n**Sandbox:** `%s`\n**Size:** %d bytes", in.SandboxPath, len(data)))
	mime := http.DetectContentType(data)
	uri := "sandbox://" + in.SandboxID + "/" + path.Clean(in.SandboxPath)
	switch {
	case strings.HasPrefix(mime, "image/"):
		res.Content = append(res.Content, &sdk.ImageContent{Data: data, MIMEType: mime})
	case strings.HasPrefix(mime, "text/") && utf8.Valid(data):
		res.Content = append(res.Content, &sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: uri, MIMEType: mime, Text: string(data)}})
	default:
		res.Content = append(res.Content, &sdk.EmbeddedResource{Resource: &sdk.ResourceContents{URI: uri, MIMEType: mime, Blob: data}})
	}
	return res, nil
}

// saveLocal streams body to the local path (stdio server), bounded.
func (t *tools) saveLocal(ctx context.Context, in downloadIn, body io.Reader) (*sdk.CallToolResult, error) {
	dest := in.LocalPath
	if dest == "" {
		dest = path.Base(in.SandboxPath)
	}
	local, err := localPath(dest)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(local), ".shipyard-download-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	n, err := io.Copy(tmp, io.LimitReader(body, t.opts.MaxTransferFileBytes+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if n > t.opts.MaxTransferFileBytes {
		return nil, badArg("downloaded file too large: exceeds limit of %d bytes", t.opts.MaxTransferFileBytes)
	}
	if err := os.Rename(tmp.Name(), local); err != nil {
		return nil, err
	}
	t.log.InfoContext(ctx, "file_downloaded", "sandbox_id", in.SandboxID, "sandbox", in.SandboxPath, "local", local, "size", n)
	return text(fmt.Sprintf("File downloaded successfully.\n\n**Sandbox:** `%s`\n**Local:** `%s`\n**Size:** %d bytes", in.SandboxPath, local, n)), nil
}
