package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzBrowserBodies: any body of the browser routes either fails with a 422
// (or the body-reading error) or yields what Gull can be given: non-blank,
// NUL-free command lines, at most maxBrowserCommands, timeouts in bounds.
func FuzzBrowserBodies(f *testing.F) {
	for _, s := range []string{
		`{"cmd":"open http://ship:8000/","timeout":30,"learn":true,"include_trace":"yes"}`,
		`{"commands":["snapshot -i","click @e1"],"stop_on_error":false,"timeout":600}`,
		`{"commands":[""]}`, `{"commands":"x"}`, `{"cmd":"\u0000"}`, `{"cmd":"  "}`, `[]`, `{"timeout":1e3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, batch := range []bool{false, true} {
			b, err := readBody(httptest.NewRequest("POST", "/x", bytes.NewReader(data)), 1<<20, false)
			if err != nil {
				continue
			}
			var cmds []string
			if batch {
				cmds = b.commandList("commands")
			} else {
				cmds = []string{b.commandLine("cmd")}
			}
			timeout := b.integer("timeout", false, &minTimeout, &maxBrowserBatchTimeout)
			_ = browserMeta(b, true)
			if b.err() != nil {
				continue
			}
			if len(cmds) == 0 || len(cmds) > maxBrowserCommands {
				t.Fatalf("accepted %d commands", len(cmds))
			}
			for _, c := range cmds {
				if strings.TrimSpace(c) == "" || strings.ContainsRune(c, 0) {
					t.Fatalf("accepted command %q", c)
				}
			}
			if timeout != nil && (*timeout < 1 || *timeout > 600) {
				t.Fatalf("accepted timeout %d", *timeout)
			}
		}
	})
}
