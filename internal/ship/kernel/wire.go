package kernel

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// This file holds the Jupyter wire protocol (messaging spec 5.3): message
// framing, HMAC-SHA256 signing and the connection file.

const (
	protocolVersion = "5.3"
	delimiter       = "<IDS|MSG>"
	username        = "shipyard"
)

var errBadSignature = errors.New("kernel: bad message signature")

// header is a Jupyter message header (also used for parent_header).
type header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// message is a decoded, verified Jupyter message.
type message struct {
	Header  header
	Parent  header
	Content json.RawMessage
	// Dropped is the size of a content too large to be received (see
	// limitConn); Content is then empty and the message is not verified: it
	// can only make its own request's output say that something was dropped.
	Dropped int64
}

// codec signs and verifies messages of one kernel session.
type codec struct {
	key     []byte
	session string
}

func (c codec) sign(parts ...[]byte) []byte {
	mac := hmac.New(sha256.New, c.key)
	for _, p := range parts {
		mac.Write(p)
	}
	sum := mac.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// encode builds the frames of a new message of type msgType; it returns the
// frames and the new msg_id.
func (c codec) encode(msgType string, content any) ([][]byte, string, error) {
	id := newID()
	h, err := json.Marshal(header{
		MsgID:    id,
		Session:  c.session,
		Username: username,
		Date:     time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		MsgType:  msgType,
		Version:  protocolVersion,
	})
	if err != nil {
		return nil, "", fmt.Errorf("encode header: %w", err)
	}
	body, err := json.Marshal(content)
	if err != nil {
		return nil, "", fmt.Errorf("encode %s content: %w", msgType, err)
	}
	parent, meta := []byte("{}"), []byte("{}")
	return [][]byte{[]byte(delimiter), c.sign(h, parent, meta, body), h, parent, meta, body}, id, nil
}

// decode verifies and parses the frames of a received message. Routing
// identities (and the iopub topic) before the delimiter are skipped.
func (c codec) decode(frames [][]byte) (*message, error) {
	i := 0
	for i < len(frames) && !bytes.Equal(frames[i], []byte(delimiter)) {
		i++
	}
	if len(frames)-i < 6 {
		return nil, fmt.Errorf("kernel: malformed message (%d frames)", len(frames))
	}
	sig, h, parent, meta, content := frames[i+1], frames[i+2], frames[i+3], frames[i+4], frames[i+5]
	m := &message{Content: content}
	if size, ok := droppedSize(content); ok {
		m.Content, m.Dropped = nil, size
	} else if !hmac.Equal(sig, c.sign(h, parent, meta, content)) {
		return nil, errBadSignature
	}
	if err := json.Unmarshal(h, &m.Header); err != nil {
		return nil, fmt.Errorf("kernel: decode header: %w", err)
	}
	if err := json.Unmarshal(parent, &m.Parent); err != nil {
		return nil, fmt.Errorf("kernel: decode parent header: %w", err)
	}
	return m, nil
}

// connectionInfo is the kernel's connection file.
type connectionInfo struct {
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	IP              string `json:"ip"`
	Key             string `json:"key"`
	Transport       string `json:"transport"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name"`
}

// endpoint is the zmq4 address Ship dials: TCP with received messages
// bounded (see limitConn).
func (ci connectionInfo) endpoint(port int) string {
	return fmt.Sprintf("%s://%s:%d", limitedTCP, ci.IP, port)
}

// newID returns a random UUID4 string.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
