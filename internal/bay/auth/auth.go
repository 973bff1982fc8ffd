// Package auth provisions API keys (stored hashed) and resolves a request's owner.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// DefaultOwner owns requests of the default key and anonymous requests without X-Owner.
const DefaultOwner = "default"

// Hash returns the stored form of a key.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// Provision makes sure at least one key exists, as upstream: the configured key
// (env BAY_API_KEY or security.api_key), else the keys already stored, else a
// generated one written to <dataDir>/credentials.json (0600). It returns the
// generated key's file path ("" when none was generated).
func Provision(ctx context.Context, st *store.Store, configured, dataDir, endpoint string, now time.Time) (string, error) {
	if configured != "" {
		return "", st.EnsureAPIKey(ctx, Hash(configured), DefaultOwner, now)
	}
	keys, err := st.ActiveAPIKeys(ctx)
	if err != nil {
		return "", err
	}
	if len(keys) > 0 {
		return "", nil
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := "sk-bay-" + hex.EncodeToString(b[:])
	if err := st.EnsureAPIKey(ctx, Hash(key), DefaultOwner, now); err != nil {
		return "", err
	}
	doc, _ := json.MarshalIndent(map[string]string{
		"api_key": key, "endpoint": endpoint, "generated_at": now.UTC().Format("2006-01-02T15:04:05.000000+00:00"),
	}, "", "  ")
	path := filepath.Join(dataDir, "credentials.json")
	if err := os.WriteFile(path, append(doc, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("auth: write %s: %w", path, err)
	}
	return path, os.Chmod(path, 0o600)
}

// Policy says who may call without a key.
type Policy struct {
	// AllowAnonymous lets a request without an Authorization header act as its
	// X-Owner (or DefaultOwner).
	AllowAnonymous bool
	// AllowAnonymousRemote extends that to non-loopback peers; otherwise an
	// anonymous request must come from 127.0.0.0/8 or ::1.
	AllowAnonymousRemote bool
}

// Authenticator maps requests to owners.
type Authenticator struct {
	keys   map[string]string // hash → owner, loaded once at start-up
	policy Policy
}

// New loads the active keys and applies p to requests without one.
func New(ctx context.Context, st *store.Store, p Policy) (*Authenticator, error) {
	keys, err := st.ActiveAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	return &Authenticator{keys: keys, policy: p}, nil
}

// maxKeyLen bounds what is hashed; generated keys are 71 bytes.
const maxKeyLen = 4096

// ParseAuthorization reads the Authorization header: present is false when
// there is none; otherwise it must be exactly one "<scheme> <key>" with the
// scheme "Bearer" in any case (RFC 7235) and one non-empty key of printable
// ASCII, else an unauthorized error.
func ParseAuthorization(h http.Header) (key string, present bool, err error) {
	vals := h.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
	default:
		return "", true, errs.New(errs.Unauthorized, "Malformed Authorization header: sent more than once")
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", true, errs.New(errs.Unauthorized, "Malformed Authorization header: expected 'Bearer <api key>'")
	}
	key = strings.TrimLeft(rest, " ")
	if key == "" || len(key) > maxKeyLen {
		return "", true, errs.New(errs.Unauthorized, "Malformed Authorization header: expected 'Bearer <api key>'")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c >= 0x7f {
			return "", true, errs.New(errs.Unauthorized, "Malformed Authorization header: expected 'Bearer <api key>'")
		}
	}
	return key, true, nil
}

// Owner resolves the owner of r or returns an unauthorized error. A present
// Authorization header is always checked, whatever the anonymous policy.
func (a *Authenticator) Owner(r *http.Request) (string, error) {
	key, present, err := ParseAuthorization(r.Header)
	if err != nil {
		return "", err
	}
	if present {
		sum := Hash(key)
		owner := ""
		for hash, o := range a.keys { // constant-time per comparison; visit all
			if subtle.ConstantTimeCompare([]byte(hash), []byte(sum)) == 1 {
				owner = o
			}
		}
		if owner == "" {
			return "", errs.New(errs.Unauthorized, "Invalid API key")
		}
		return owner, nil
	}
	if !a.policy.AllowAnonymous {
		return "", errs.New(errs.Unauthorized, "Authentication required")
	}
	if !a.policy.AllowAnonymousRemote && !Loopback(r.RemoteAddr) {
		return "", errs.New(errs.Unauthorized,
			"Authentication required: anonymous access is allowed from this host only (send Authorization: Bearer <api key>)")
	}
	return ParseOwner(r.Header.Get("X-Owner"))
}

// ParseOwner validates an X-Owner value; "" is DefaultOwner.
func ParseOwner(o string) (string, error) {
	if o == "" {
		return DefaultOwner, nil
	}
	if !validOwner(o) {
		return "", errs.New(errs.Validation, "X-Owner must be 1-128 printable characters")
	}
	return o, nil
}

// Loopback reports whether remoteAddr (http.Request.RemoteAddr: the TCP peer,
// never a forwarded header) is a loopback address.
func Loopback(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

// validOwner: owners become database keys and container labels.
func validOwner(o string) bool {
	if len(o) > 128 || !utf8.ValidString(o) {
		return false
	}
	for _, c := range o {
		if !unicode.IsPrint(c) {
			return false
		}
	}
	return true
}
