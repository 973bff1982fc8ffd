package api

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

func TestValidatePath(t *testing.T) {
	cases := []struct {
		in, want, reason string
	}{
		{"a.txt", "a.txt", ""},
		{"a//b/./c", "a/b/c", ""},
		{"a/../b.txt", "b.txt", ""},
		{".", ".", ""},
		{"a/..", ".", ""},
		{"", "", "empty_path"},
		{"a\x00b", "", "null_byte"},
		{"/etc/passwd", "", "absolute_path"},
		{"../x", "", "path_traversal"},
		{"a/../../x", "", "path_traversal"},
		{"..", "", "path_traversal"},
	}
	for _, c := range cases {
		got, err := ValidatePath(c.in, "path")
		if c.reason == "" {
			if err != nil || got != c.want {
				t.Errorf("%q: got %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		e, ok := errs.As(err)
		if !ok || e.Code != errs.InvalidPath || e.Details["reason"] != c.reason || e.Details["field"] != "path" {
			t.Errorf("%q: got %q, %v; want reason %s", c.in, got, err, c.reason)
		}
	}
}

// FuzzValidatePath: whatever comes in, an accepted path is relative, clean and never climbs out.
func FuzzValidatePath(f *testing.F) {
	for _, s := range []string{"a", "../a", "a/../../b", "/x", "a\x00", "./.././a", "a//b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ValidatePath(in, "path")
		if err != nil {
			return
		}
		if out == "" || strings.HasPrefix(out, "/") || strings.ContainsRune(out, 0) || !utf8.ValidString(out) && utf8.ValidString(in) {
			t.Fatalf("%q → %q", in, out)
		}
		for _, part := range strings.Split(out, "/") {
			if part == ".." || (part == "" && out != "") || (part == "." && out != ".") {
				t.Fatalf("%q → %q has part %q", in, out, part)
			}
		}
	})
}

func TestPyFloat(t *testing.T) {
	for in, want := range map[float64]string{1: "1.0", 2.5: "2.5", 0: "0.0", 1e6: "1000000.0", 0.25: "0.25"} {
		b, _ := pyFloat(in).MarshalJSON()
		if string(b) != want {
			t.Errorf("%v → %s, want %s", in, b, want)
		}
	}
}

func TestEncodeKeepsHTML(t *testing.T) {
	if got := string(encode(map[string]string{"a": "<b>&"})); got != `{"a":"<b>&"}` {
		t.Fatalf("%s", got)
	}
}
