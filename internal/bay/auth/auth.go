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

// Authenticator maps requests to owners.
type Authenticator struct {
	keys           map[string]string // hash → owner, loaded once at start-up
	allowAnonymous bool
}

// New loads the active keys.
func New(ctx context.Context, st *store.Store, allowAnonymous bool) (*Authenticator, error) {
	keys, err := st.ActiveAPIKeys(ctx)
	if err != nil {
		return nil, err
	}
	return &Authenticator{keys: keys, allowAnonymous: allowAnonymous}, nil
}

// Owner resolves the owner of r or returns an unauthorized error.
func (a *Authenticator) Owner(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if token, ok := strings.CutPrefix(h, "Bearer "); ok {
		if len(a.keys) == 0 {
			if a.allowAnonymous {
				return DefaultOwner, nil
			}
			return "", errs.New(errs.Unauthorized, "Authentication required")
		}
		sum := Hash(token)
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
	if !a.allowAnonymous {
		return "", errs.New(errs.Unauthorized, "Authentication required")
	}
	if o := r.Header.Get("X-Owner"); o != "" {
		if !validOwner(o) {
			return "", errs.New(errs.Validation, "X-Owner must be 1-128 printable characters")
		}
		return o, nil
	}
	return DefaultOwner, nil
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
