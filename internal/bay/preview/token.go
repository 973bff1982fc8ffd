// Package preview is port preview through Bay: signed, expiring, revocable
// URL tokens for one sandbox's port, port validation, and the reverse proxy
// (HTTP, streaming, WebSocket upgrades) to a server user code runs in the
// sandbox.
package preview

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Claims is what a token grants: one sandbox's one port until Expires, for as
// long as the sandbox's revocation generations (all ports, this port) are the
// ones it was signed with.
type Claims struct {
	SandboxID string
	Port      int
	Expires   time.Time // whole seconds
	GenAll    int64     // generation of all the sandbox's ports when signed
	GenPort   int64     // generation of this port when signed
}

// Token errors. ErrMalformed and ErrBadSignature mean the token is not one of
// ours (401); the others mean it is, but not for this request any more.
var (
	ErrMalformed    = errors.New("preview token is malformed")
	ErrBadSignature = errors.New("preview token signature does not match")
	ErrExpired      = errors.New("preview token has expired")
	ErrWrongTarget  = errors.New("preview token is for another sandbox or port")
	ErrRevoked      = errors.New("preview token has been revoked")
)

const (
	tokenPrefix = "pv1."
	// MaxTokenLen bounds what Parse reads (a real token is ~100 characters).
	MaxTokenLen = 512
	macLen      = sha256.Size
	maxIDLen    = 128
)

var b64 = base64.RawURLEncoding.Strict() // one spelling per token: no stray bits

// Signer signs and verifies tokens with one key.
type Signer struct {
	key []byte
}

// NewSigner returns a signer; the key should be at least 32 random bytes.
func NewSigner(key []byte) *Signer { return &Signer{key: append([]byte(nil), key...)} }

func (c Claims) payload() string {
	return c.SandboxID + "|" + strconv.Itoa(c.Port) + "|" + strconv.FormatInt(c.Expires.Unix(), 10) + "|" +
		strconv.FormatInt(c.GenAll, 10) + "|" + strconv.FormatInt(c.GenPort, 10)
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("shipyard-preview-v1\x00"))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Sign returns the token of c.
func (s *Signer) Sign(c Claims) string {
	p := c.payload()
	return tokenPrefix + b64.EncodeToString([]byte(p)) + "." + b64.EncodeToString(s.mac(p))
}

// Parse decodes a token without checking its signature (Verify does).
func Parse(tok string) (Claims, []byte, error) {
	var c Claims
	if len(tok) > MaxTokenLen {
		return c, nil, ErrMalformed
	}
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok {
		return c, nil, ErrMalformed
	}
	for i := 0; i < len(rest); i++ { // base64url and the one separator (the decoder skips newlines)
		if b := rest[i]; !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.') {
			return c, nil, ErrMalformed
		}
	}
	p64, m64, ok := strings.Cut(rest, ".")
	if !ok {
		return c, nil, ErrMalformed
	}
	payload, err := b64.DecodeString(p64)
	if err != nil {
		return c, nil, ErrMalformed
	}
	mac, err := b64.DecodeString(m64)
	if err != nil || len(mac) != macLen {
		return c, nil, ErrMalformed
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 5 || f[0] == "" || len(f[0]) > maxIDLen {
		return c, nil, ErrMalformed
	}
	for _, r := range f[0] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return c, nil, ErrMalformed
		}
	}
	port, err := ParsePort(f[1])
	if err != nil {
		return c, nil, ErrMalformed
	}
	var n [3]int64
	for i, s := range f[2:] {
		if len(s) == 0 || len(s) > 19 || (len(s) > 1 && s[0] == '0') {
			return c, nil, ErrMalformed
		}
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			return c, nil, ErrMalformed
		}
		n[i] = v
	}
	c = Claims{SandboxID: f[0], Port: port, Expires: time.Unix(n[0], 0).UTC(), GenAll: n[1], GenPort: n[2]}
	if c.payload() != string(payload) { // one spelling per claim set
		return Claims{}, nil, ErrMalformed
	}
	return c, mac, nil
}

// Verify checks tok's signature, that it is for sandboxID's port, and that it
// has not expired at now. The caller then checks the generations (Current).
func (s *Signer) Verify(tok, sandboxID string, port int, now time.Time) (Claims, error) {
	c, mac, err := Parse(tok)
	if err != nil {
		return Claims{}, err
	}
	if !hmac.Equal(mac, s.mac(c.payload())) {
		return Claims{}, ErrBadSignature
	}
	if c.SandboxID != sandboxID || c.Port != port {
		return Claims{}, ErrWrongTarget
	}
	if !now.Before(c.Expires) {
		return Claims{}, ErrExpired
	}
	return c, nil
}

// Current reports whether c was signed with the sandbox's current revocation
// generations (ErrRevoked otherwise).
func (c Claims) Current(genAll, genPort int64) error {
	if c.GenAll != genAll || c.GenPort != genPort {
		return ErrRevoked
	}
	return nil
}
