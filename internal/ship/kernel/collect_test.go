package kernel

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// msg builds a message of type typ with content v (marshalled to JSON).
func msg(t testing.TB, typ string, v any) *message {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return &message{Header: header{MsgType: typ}, Content: b}
}

// responseSize is what the result costs in Ship's JSON response.
func responseSize(t testing.TB, r Result) int {
	t.Helper()
	b, err := json.Marshal(map[string]any{"text": r.Text, "images": r.Images, "data": r.Data, "error": r.Error})
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func TestCollectorBoundsEveryKind(t *testing.T) {
	const max, total = 1000, 4000
	big := strings.Repeat("h", 50_000)
	png := base64.StdEncoding.EncodeToString(make([]byte, 30_000))
	tests := []struct {
		name      string
		msgs      []*message
		wantText  string // substring of Result.Text
		wantError string // substring of Result.Error
		check     func(t *testing.T, r Result)
	}{
		{
			name:     "stream",
			msgs:     []*message{msg(t, "stream", map[string]any{"name": "stdout", "text": big})},
			wantText: "... [output truncated: 49000 bytes omitted]",
		},
		{
			name:     "later streams counted in the marker",
			msgs:     []*message{msg(t, "stream", map[string]any{"text": big}), msg(t, "stream", map[string]any{"text": "abc"})},
			wantText: "[output truncated: 49003 bytes omitted]",
		},
		{
			name:     "display html",
			msgs:     []*message{msg(t, "display_data", map[string]any{"data": map[string]any{"text/html": big, "text/plain": "<HTML>"}})},
			wantText: "<HTML>",
			check: func(t *testing.T, r Result) {
				h := r.Data["text/html"]
				if len(h) != 1 || !strings.HasPrefix(h[0], "hhh") || !strings.HasSuffix(h[0], "[output truncated: 49000 bytes omitted]") {
					t.Errorf("text/html = %.80q…", h)
				}
			},
		},
		{
			name:     "execute_result text/plain",
			msgs:     []*message{msg(t, "execute_result", map[string]any{"data": map[string]any{"text/plain": big}})},
			wantText: "bytes omitted]",
		},
		{
			name:     "image too large is dropped, not cut",
			msgs:     []*message{msg(t, "display_data", map[string]any{"data": map[string]any{"image/png": png, "text/plain": "<Figure>"}})},
			wantText: "image/png output of 40000 bytes dropped",
			check: func(t *testing.T, r Result) {
				if len(r.Images) != 0 {
					t.Errorf("images = %d, want none", len(r.Images))
				}
			},
		},
		{
			name:     "json is dropped, not cut",
			msgs:     []*message{msg(t, "display_data", map[string]any{"data": map[string]any{"application/json": map[string]string{"k": big}}})},
			wantText: "application/json output of",
			check: func(t *testing.T, r Result) {
				if len(r.Data) != 0 {
					t.Errorf("data = %v", r.Data)
				}
			},
		},
		{
			name: "error traceback and evalue",
			msgs: []*message{
				msg(t, "error", map[string]any{"ename": "ValueError", "evalue": big, "traceback": []string{"Traceback", "ValueError: " + big}}),
				msg(t, "execute_reply", map[string]any{"status": "error", "ename": "ValueError", "evalue": big}),
			},
			wantError: "bytes omitted]",
			check: func(t *testing.T, r Result) {
				if r.Success || !strings.HasPrefix(r.Error, "Traceback\nValueError: eee"[:21]) {
					t.Errorf("error = %.60q success %v", r.Error, r.Success)
				}
			},
		},
		{
			name:      "evalue only in the reply",
			msgs:      []*message{msg(t, "execute_reply", map[string]any{"status": "error", "ename": "E", "evalue": big})},
			wantError: "E: hhh",
		},
		{
			name: "total budget across many entries",
			msgs: func() []*message {
				var ms []*message
				for range 20 {
					ms = append(ms, msg(t, "display_data", map[string]any{"data": map[string]any{"text/html": strings.Repeat("x", 900)}}))
				}
				return ms
			}(),
			wantText: "more outputs dropped",
			check: func(t *testing.T, r Result) {
				if n := len(r.Data["text/html"]); n < 3 || n > 5 {
					t.Errorf("%d html entries kept, want about total/900", n)
				}
			},
		},
		{
			name: "many made-up MIME types",
			msgs: func() []*message {
				bundle := map[string]any{}
				for i := range 2000 {
					bundle[fmt.Sprintf("application/x-%s-%d", strings.Repeat("k", 100), i)] = "v"
				}
				return []*message{msg(t, "display_data", map[string]any{"data": bundle})}
			}(),
			wantText: "more outputs dropped",
		},
		{
			name:     "control characters cost their escaping",
			msgs:     []*message{msg(t, "stream", map[string]any{"text": strings.Repeat("\x1b", 1000)})},
			wantText: "bytes omitted]",
			check: func(t *testing.T, r Result) {
				if n := strings.Count(r.Text, "\x1b"); n != max/6 {
					t.Errorf("%d escapes kept, want %d", n, max/6)
				}
			},
		},
		{
			name: "dropped messages still fail the cell",
			msgs: []*message{
				{Header: header{MsgType: "error"}, Dropped: 50_000_000},
				{Header: header{MsgType: "execute_reply"}, Dropped: 50_000_000},
			},
			wantError: "too large (50000000 bytes)",
		},
		{
			name:     "dropped display",
			msgs:     []*message{{Header: header{MsgType: "display_data"}, Dropped: 50_000_000}},
			wantText: "display_data output of 50000000 bytes dropped",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCollector(max, total, false)
			for _, m := range tt.msgs {
				if err := c.add(m); err != nil {
					t.Fatal(err)
				}
			}
			r := c.result()
			if !r.Truncated {
				t.Error("Truncated not set")
			}
			if !strings.Contains(r.Text, tt.wantText) {
				t.Errorf("text %.200q… does not contain %q", r.Text, tt.wantText)
			}
			if !strings.Contains(r.Error, tt.wantError) {
				t.Errorf("error %.200q… does not contain %q", r.Error, tt.wantError)
			}
			if tt.wantError != "" && r.Success {
				t.Error("Success with an error")
			}
			if n := responseSize(t, r); n > total+max+1000 {
				t.Errorf("response %d bytes, want at most about %d", n, total+max)
			}
			if !utf8.ValidString(r.Text) || !utf8.ValidString(r.Error) {
				t.Error("invalid UTF-8")
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

func TestCollectorKeepsSmallOutputWhole(t *testing.T) {
	c := newCollector(1000, 4000, false)
	png := base64.StdEncoding.EncodeToString([]byte("png"))
	for _, m := range []*message{
		msg(t, "stream", map[string]any{"text": "hello\n"}),
		msg(t, "display_data", map[string]any{"data": map[string]any{"image/png": png + "\n", "text/plain": "<Figure>"}}),
		msg(t, "display_data", map[string]any{"data": map[string]any{"text/html": "<b>x</b>", "application/json": map[string]int{"a": 1}}}),
		msg(t, "execute_result", map[string]any{"data": map[string]any{"text/plain": "2"}}),
		msg(t, "execute_reply", map[string]any{"status": "ok", "execution_count": 3}),
	} {
		if err := c.add(m); err != nil {
			t.Fatal(err)
		}
	}
	r := c.result()
	if r.Truncated || !r.Success || r.Text != "hello\n2" || len(r.Images) != 1 || r.Images[0]["image/png"] != png ||
		r.Data["text/html"][0] != "<b>x</b>" || r.Data["application/json"][0] != `{"a":1}` {
		t.Errorf("result %+v", r)
	}
}

// FuzzCollector feeds arbitrary message contents, seeded with real ipykernel
// messages, and checks the result stays bounded and valid.
func FuzzCollector(f *testing.F) {
	seeds := []struct{ typ, content string }{
		{"stream", `{"name":"stdout","text":"hello\n"}`},
		{"display_data", `{"data":{"text/plain":"<IPython.core.display.HTML object>","text/html":"<b>h</b>"},"metadata":{},"transient":{}}`},
		{"execute_result", `{"data":{"text/plain":"2"},"metadata":{},"execution_count":1}`},
		{"error", `{"traceback":["\u001b[0;31mValueError\u001b[0m: e"],"ename":"ValueError","evalue":"e"}`},
		{"execute_reply", `{"status":"error","execution_count":2,"ename":"ValueError","evalue":"e","traceback":[]}`},
		{"display_data", `{"data":{"image/png":"iVBORw0KGgo=\n","text/plain":"<Figure size 640x480 with 1 Axes>"},"metadata":{}}`},
		{"status", `{"execution_state":"idle"}`},
	}
	for _, s := range seeds {
		f.Add(s.typ, []byte(s.content), 3)
	}
	f.Fuzz(func(t *testing.T, typ string, content []byte, repeat int) {
		const max, total = 200, 600
		c := newCollector(max, total, false)
		for range repeat % 8 {
			_ = c.add(&message{Header: header{MsgType: typ}, Content: content})
		}
		r := c.result()
		if n := responseSize(t, r); n > total+max+2000 {
			t.Fatalf("response of %d bytes", n)
		}
		if !utf8.ValidString(r.Text) || !utf8.ValidString(r.Error) {
			t.Fatal("invalid UTF-8")
		}
		for _, vs := range r.Data {
			for _, v := range vs {
				if !utf8.ValidString(v) {
					t.Fatal("invalid UTF-8 in data")
				}
			}
		}
	})
}
