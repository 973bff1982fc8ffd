// Package auth provisions API keys (stored hashed) and resolves who a request
// acts as: an owner, with admin rights or not.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
	"github.com/shipyard/shipyard/internal/bay/model"
	"github.com/shipyard/shipyard/internal/bay/store"
)

// DefaultOwner owns requests of the default key and anonymous requests without X-Owner.
const DefaultOwner = "default"

// Hash returns the stored form of a key.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// KeyPrefix starts every key Bay makes (as upstream's generated key).
const KeyPrefix = "sk-bay-"

// prefixLen is how much of a key listings show: "sk-bay-" and 8 hex digits
// (32 of the key's 256 random bits; useless to guess the rest).
const prefixLen = len(KeyPrefix) + 8

// NewKey returns a fresh key (shown once, never stored), its stored hash and
// its listing prefix: "sk-bay-" and 64 hex digits of crypto/rand.
func NewKey() (key, hash, prefix string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", "", fmt.Errorf("auth: random key: %w", err)
	}
	key = KeyPrefix + hex.EncodeToString(b[:])
	return key, Hash(key), Prefix(key), nil
}

// Prefix is the part of key shown in listings.
func Prefix(key string) string {
	if len(key) > prefixLen {
		return key[:prefixLen]
	}
	return key
}

// Provision makes sure at least one key exists, as upstream: the configured key
// (env BAY_API_KEY or security.api_key), else the keys already stored, else a
// generated one written to <dataDir>/credentials.json (0600). The configured
// and the generated key are admin keys of DefaultOwner. It returns the
// generated key's file path ("" when none was generated); revoked is true when
// the configured key was revoked through the admin API (it stays refused).
func Provision(ctx context.Context, st *store.Store, configured, dataDir, endpoint string, now time.Time) (path string, revoked bool, err error) {
	if configured != "" {
		k, err := st.EnsureAdminKey(ctx, &store.APIKey{ID: model.NewID("key"), Owner: DefaultOwner, Admin: true,
			Prefix: Prefix(configured), Label: "security.api_key", Active: true, CreatedAt: now}, Hash(configured))
		if err != nil {
			return "", false, err
		}
		return "", !k.Active, nil
	}
	keys, err := st.ActiveAPIKeys(ctx)
	if err != nil {
		return "", false, err
	}
	if len(keys) > 0 {
		return "", false, nil
	}
	key, hash, prefix, err := NewKey()
	if err != nil {
		return "", false, err
	}
	if err := st.CreateAPIKey(ctx, &store.APIKey{ID: model.NewID("key"), Owner: DefaultOwner, Admin: true,
		Prefix: prefix, Label: "generated", Active: true, CreatedAt: now}, hash); err != nil {
		return "", false, err
	}
	doc, _ := json.MarshalIndent(map[string]string{
		"api_key": key, "endpoint": endpoint, "generated_at": now.UTC().Format("2006-01-02T15:04:05.000000+00:00"),
	}, "", "  ")
	path = filepath.Join(dataDir, "credentials.json")
	if err := os.WriteFile(path, append(doc, '\n'), 0o600); err != nil {
		return "", false, fmt.Errorf("auth: write %s: %w", path, err)
	}
	return path, false, os.Chmod(path, 0o600)
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

// Keys finds active keys by hash (the store).
type Keys interface {
	// LookupAPIKey returns the active key whose hash is hash and the stored
	// hash, else store.ErrNotFound.
	LookupAPIKey(ctx context.Context, hash string) (*store.APIKey, string, error)
}

// Identity is who a request acts as.
type Identity struct {
	Owner string
	// Admin: the request carries an admin key (it may call /v1/admin/*).
	Admin bool
	// Anonymous: no key (allowed by the policy); Owner is the X-Owner asserted.
	Anonymous bool
	KeyID     string // the key's id ("" when anonymous)
}

// Authenticator maps requests to identities.
type Authenticator struct {
	keys   Keys
	policy Policy
	now    func() time.Time

	mu    sync.Mutex
	known map[string]knownKey // by key hash: keys found in the store lately
}

// knownKey is a key found in the store, reused until expires.
type knownKey struct {
	id      Identity
	expires time.Time
}

// Keys found in the store are reused for keyTTL: a key revoked through any
// replica is refused by all within it (within a second is the promise; the
// replica that revoked it refuses it at once, see Forget), and a busy client
// costs one indexed read per keyTTL instead of one per request. Unknown keys
// are not remembered (a key minted on another replica works at once); the map
// is emptied when it reaches maxKnownKeys.
const (
	keyTTL       = 500 * time.Millisecond
	maxKnownKeys = 4096
)

// New returns an Authenticator that looks keys up in keys and applies p to
// requests without one.
func New(keys Keys, p Policy) *Authenticator {
	return &Authenticator{keys: keys, policy: p, now: time.Now, known: map[string]knownKey{}}
}

// Forget drops every remembered key: after a revocation or rotation through
// this replica, the old key is refused by it at the next request.
func (a *Authenticator) Forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	clear(a.known)
}

// lookup resolves a key hash, from memory when it was found lately.
func (a *Authenticator) lookup(ctx context.Context, sum string) (Identity, error) {
	now := a.now()
	a.mu.Lock()
	k, ok := a.known[sum]
	a.mu.Unlock()
	if ok && now.Before(k.expires) {
		return k.id, nil
	}
	rec, stored, err := a.keys.LookupAPIKey(ctx, sum)
	if errors.Is(err, store.ErrNotFound) {
		return Identity{}, errs.New(errs.Unauthorized, "Invalid API key")
	}
	if err != nil {
		return Identity{}, fmt.Errorf("auth: look up key: %w", err)
	}
	// The index found it; compare in constant time all the same.
	if subtle.ConstantTimeCompare([]byte(stored), []byte(sum)) != 1 {
		return Identity{}, errs.New(errs.Unauthorized, "Invalid API key")
	}
	id := Identity{Owner: rec.Owner, Admin: rec.Admin, KeyID: rec.ID}
	a.mu.Lock()
	if len(a.known) >= maxKnownKeys {
		clear(a.known)
	}
	a.known[sum] = knownKey{id: id, expires: now.Add(keyTTL)}
	a.mu.Unlock()
	return id, nil
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

// Owner resolves the owner of r (see Identify).
func (a *Authenticator) Owner(r *http.Request) (string, error) {
	id, err := a.Identify(r)
	return id.Owner, err
}

// Identify resolves who r acts as, or returns an unauthorized error. A present
// Authorization header is always checked, whatever the anonymous policy; only
// a request without one may assert its owner (X-Owner), and only when the
// policy allows anonymous requests.
func (a *Authenticator) Identify(r *http.Request) (Identity, error) {
	key, present, err := ParseAuthorization(r.Header)
	if err != nil {
		return Identity{}, err
	}
	if present {
		return a.lookup(r.Context(), Hash(key))
	}
	if !a.policy.AllowAnonymous {
		return Identity{}, errs.New(errs.Unauthorized, "Authentication required")
	}
	if !a.policy.AllowAnonymousRemote && !Loopback(r.RemoteAddr) {
		return Identity{}, errs.New(errs.Unauthorized,
			"Authentication required: anonymous access is allowed from this host only (send Authorization: Bearer <api key>)")
	}
	owner, err := ParseOwner(r.Header.Get("X-Owner"))
	if err != nil {
		return Identity{}, err
	}
	return Identity{Owner: owner, Anonymous: true}, nil
}

// ParseOwner validates an X-Owner value; "" is DefaultOwner; the warm pool's
// owner is refused.
func ParseOwner(o string) (string, error) {
	if o == "" {
		return DefaultOwner, nil
	}
	if !validOwner(o) {
		return "", errs.New(errs.Validation, "X-Owner must be 1-128 printable characters")
	}
	if o == model.WarmOwner {
		// The warm pool's sandboxes are handed to tenants later: nobody may act
		// as their owner (and plant something in one before it is claimed).
		return "", errs.Newf(errs.Validation, "X-Owner %q is reserved", o)
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
