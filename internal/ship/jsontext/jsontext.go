// Package jsontext measures and cuts strings by what they cost in a JSON
// response (encoding/json with HTML escaping off, as Ship writes), so that
// output caps bound the response whatever the characters: a NUL byte costs
// six bytes (\u0000), not one.
package jsontext

import "unicode/utf8"

// Len is the length of s once encoded as a JSON string, without the quotes.
func Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		cost, size := next(s[i:])
		n += cost
		i += size
	}
	return n
}

// Cut returns the longest prefix of s, ending at a rune boundary, whose JSON
// length is at most limit, and how many bytes of s it leaves out.
func Cut(s string, limit int) (head string, omitted int) {
	n, i := 0, 0
	for i < len(s) {
		cost, size := next(s[i:])
		if n+cost > limit {
			break
		}
		n += cost
		i += size
	}
	return s[:i], len(s) - i
}

// next returns the JSON cost and the byte size of the first rune of s.
func next(s string) (cost, size int) {
	b := s[0]
	if b < utf8.RuneSelf {
		switch {
		case b == '"' || b == '\\' || b == '\n' || b == '\r' || b == '\t' || b == '\b' || b == '\f':
			return 2, 1
		case b < 0x20:
			return 6, 1 // \u00XX
		}
		return 1, 1
	}
	r, size := utf8.DecodeRuneInString(s)
	switch {
	case r == utf8.RuneError && size == 1:
		return 6, 1 // encoding/json writes \ufffd
	case r == '\u2028' || r == '\u2029':
		return 6, size
	}
	return size, size
}
