package jsontext

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// encoded is what Ship's writeJSON writes for s, without quotes and newline.
func encoded(t testing.TB, s string) int {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return b.Len() - 3
}

func TestCut(t *testing.T) {
	tests := []struct {
		in      string
		limit   int
		want    string
		omitted int
	}{
		{"abc", 10, "abc", 0},
		{"abc", 2, "ab", 1},
		{"éé", 3, "é", 2},
		{"a\"b", 2, "a", 2},
		{"\x00x", 5, "", 2},
		{"\u2028z", 6, "\u2028", 1},
		{"a\xffb", 6, "a", 2},
		{"abc", -1, "", 3},
	}
	for _, tt := range tests {
		got, omitted := Cut(tt.in, tt.limit)
		if got != tt.want || omitted != tt.omitted {
			t.Errorf("Cut(%q, %d) = %q, %d; want %q, %d", tt.in, tt.limit, got, omitted, tt.want, tt.omitted)
		}
	}
}

func FuzzLen(f *testing.F) {
	for _, s := range []string{"plain", "é\u2028\x00\x1f\"\\\n\t<>&", "a\xffb", strings.Repeat("\x1b[0m", 10),
		"Traceback (most recent call last):\n\x1b[0;31mValueError\x1b[0m: e"} {
		f.Add(s, 7)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		if got, want := Len(s), encoded(t, s); got != want {
			t.Fatalf("Len(%q) = %d, encoding/json writes %d", s, got, want)
		}
		limit %= 64
		head, omitted := Cut(s, limit)
		if !strings.HasPrefix(s, head) || len(head)+omitted != len(s) || Len(head) > max(limit, 0) {
			t.Fatalf("Cut(%q, %d) = %q, %d", s, limit, head, omitted)
		}
		if utf8.ValidString(s) && !utf8.ValidString(head) {
			t.Fatalf("Cut(%q, %d) split a rune", s, limit)
		}
	})
}
