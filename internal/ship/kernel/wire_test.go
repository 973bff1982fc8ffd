package kernel

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	c := codec{key: []byte("secret"), session: "s1"}
	frames, id, err := c.encode("execute_request", map[string]string{"code": "1+1"})
	if err != nil {
		t.Fatal(err)
	}
	// What a kernel sends back carries routing identities (or the iopub
	// topic) before the delimiter.
	frames = append([][]byte{[]byte("identity")}, frames...)
	m, err := c.decode(frames)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.MsgID != id || m.Header.MsgType != "execute_request" || m.Header.Session != "s1" ||
		m.Header.Version != protocolVersion || !strings.Contains(string(m.Content), `"1+1"`) {
		t.Errorf("decoded %+v", m)
	}
}

func TestCodecRejects(t *testing.T) {
	c := codec{key: []byte("secret"), session: "s1"}
	good, _, err := c.encode("status", map[string]string{"execution_state": "idle"})
	if err != nil {
		t.Fatal(err)
	}
	clone := func() [][]byte {
		out := make([][]byte, len(good))
		for i, f := range good {
			out[i] = bytes.Clone(f)
		}
		return out
	}
	tests := []struct {
		name   string
		frames func() [][]byte
		want   error // nil: any error
	}{
		{"tampered content", func() [][]byte { f := clone(); f[5] = []byte(`{"execution_state":"busy"}`); return f }, errBadSignature},
		{"tampered header", func() [][]byte {
			f := clone()
			f[2] = bytes.Replace(f[2], []byte("status"), []byte("stream"), 1)
			return f
		}, errBadSignature},
		{"other key", func() [][]byte {
			f, _, _ := codec{key: []byte("other"), session: "s1"}.encode("status", map[string]string{})
			return f
		}, errBadSignature},
		{"no signature", func() [][]byte { f := clone(); f[1] = nil; return f }, errBadSignature},
		{"no delimiter", func() [][]byte { return clone()[1:] }, nil},
		{"too few frames", func() [][]byte { return clone()[:4] }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.decode(tt.frames())
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Errorf("decode: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	a, b := newID(), newID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("ids %q %q", a, b)
	}
}

func TestCollectorTruncatesAtRuneBoundary(t *testing.T) {
	c := newCollector(5, 5, false)
	c.addText("ab")
	c.addText("éé") // 4 bytes: only one é fits
	c.addText("z")  // nothing after a cut
	if got := c.text.String(); got != "abé" || !c.truncated {
		t.Errorf("text %q truncated %v", got, c.truncated)
	}
}

func TestEnvInitCode(t *testing.T) {
	if EnvInitCode(nil) != "" {
		t.Error("empty env should give no code")
	}
	got := EnvInitCode(map[string]string{"A": `x"y`})
	if want := `__import__('os').environ.update({"A":"x\"y"})` + "\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
