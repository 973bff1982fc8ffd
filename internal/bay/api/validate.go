package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

// Bounds of the numbers a client sends (issue 8: every duration, size, count
// and offset is bounded, so no arithmetic downstream can overflow). Upstream's
// bounds are kept where it has them.
var (
	minTimeout, maxTimeout int64 = 1, 300      // python/shell exec timeout, seconds (upstream)
	minCargoMB, maxCargoMB int64 = 1, 64 << 10 // cargo size_limit_mb (upstream: 1..65536)
	minTTL                 int64 = 0           // ttl (seconds; 0 = no expiry)
	maxTTL                 int64 = 315_360_000 // ttl and extend_by: 10 years in seconds
	maxOffset              int64 = 1<<31 - 1   // history offset
	maxTags                      = 100         // distinct tags in a history ?tags= filter
	maxIDLen                     = 128         // path ids, cursors
)

// fieldError is one entry of FastAPI's 422 {"detail":[...]}.
type fieldError struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

// validationError is a 422 with FastAPI's shape.
type validationError struct{ list []fieldError }

func (v *validationError) Error() string { return fmt.Sprintf("validation: %d errors", len(v.list)) }

// body reads one JSON object body and its fields with pydantic-like lax typing.
type body struct {
	fields map[string]any // the decoded object (numbers as json.Number)
	input  any
	errs   []fieldError
}

// readBody parses r's body (limit bytes). Empty body with allowEmpty → {}.
func readBody(r *http.Request, limit int64, allowEmpty bool) (*body, error) {
	data, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		return nil, bodyReadError(err, limit)
	}
	b := &body{fields: map[string]any{}}
	if len(bytes.TrimSpace(data)) == 0 {
		if allowEmpty {
			b.input = map[string]any{}
			return b, nil
		}
		return nil, &validationError{[]fieldError{{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil}}}
	}
	var raw any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		pos := 0
		var se *json.SyntaxError
		if errors.As(err, &se) {
			pos = int(se.Offset)
		}
		return nil, &validationError{[]fieldError{{Type: "json_invalid", Loc: []any{"body", pos},
			Msg: "JSON decode error", Input: map[string]any{}, Ctx: map[string]any{"error": err.Error()}}}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &validationError{[]fieldError{{Type: "json_invalid", Loc: []any{"body", int(dec.InputOffset())},
			Msg: "JSON decode error", Input: map[string]any{}, Ctx: map[string]any{"error": "data after the top-level value"}}}}
	}
	b.input = raw
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, &validationError{[]fieldError{{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: raw}}}
	}
	b.fields = obj
	return b, nil
}

// bodyReadError turns a failure to read a request body (too large, truncated,
// broken chunked encoding, a client that went away) into a client error:
// none of them is Bay's fault.
func bodyReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errs.Newf(errs.Validation, "Request body too large (limit %d bytes)", limit)
	}
	return errs.New(errs.Validation, "Could not read the request body (truncated or malformed)").Wrap(err)
}

func (b *body) fail(t, name, msg string, input any, ctx map[string]any) {
	b.errs = append(b.errs, fieldError{Type: t, Loc: []any{"body", name}, Msg: msg, Input: input, Ctx: ctx})
}

func (b *body) value(name string) (any, bool) {
	v, ok := b.fields[name]
	return v, ok
}

// str reads a string field; nil when absent or null (missing is an error when required).
func (b *body) str(name string, required bool) *string {
	v, ok := b.value(name)
	if !ok || v == nil {
		if required {
			b.fail("missing", name, "Field required", b.input, nil)
		}
		return nil
	}
	s, ok := v.(string)
	if !ok {
		b.fail("string_type", name, "Input should be a valid string", v, nil)
		return nil
	}
	return &s
}

// text reads a string field that is stored or executed, where a NUL byte can
// only be an error (processes and PostgreSQL text refuse it).
func (b *body) text(name string, required bool) *string {
	s := b.str(name, required)
	if s != nil && strings.ContainsRune(*s, 0) {
		b.fail("string_pattern_mismatch", name, "String should not contain NUL characters", *s, nil)
		return nil
	}
	return s
}

// integer reads an int field with bounds (lo/hi ignored when nil); nil when absent or null.
func (b *body) integer(name string, required bool, lo, hi *int64) *int64 {
	v, ok := b.value(name)
	if !ok || v == nil {
		if required {
			b.fail("missing", name, "Field required", b.input, nil)
		}
		return nil
	}
	n, ok := toInt(v)
	if !ok {
		if _, isStr := v.(string); isStr {
			b.fail("int_parsing", name, "Input should be a valid integer, unable to parse string as an integer", v, nil)
		} else {
			b.fail("int_type", name, "Input should be a valid integer", v, nil)
		}
		return nil
	}
	if lo != nil && n < *lo {
		b.fail("greater_than_equal", name, fmt.Sprintf("Input should be greater than or equal to %d", *lo), v, map[string]any{"ge": *lo})
		return nil
	}
	if hi != nil && n > *hi {
		b.fail("less_than_equal", name, fmt.Sprintf("Input should be less than or equal to %d", *hi), v, map[string]any{"le": *hi})
		return nil
	}
	return &n
}

func toInt(v any) (int64, bool) {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, true
		}
		if f, err := x.Float64(); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), true
		}
	case string:
		if n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil {
			return n, true
		}
	case bool:
		return 0, false
	}
	return 0, false
}

// boolean reads a bool field (default when absent).
func (b *body) boolean(name string, def bool) bool {
	v, ok := b.value(name)
	if !ok || v == nil {
		return def
	}
	switch x := v.(type) {
	case bool:
		return x
	case json.Number:
		if x.String() == "0" || x.String() == "1" {
			return x.String() == "1"
		}
	case string:
		switch strings.ToLower(x) {
		case "true", "1", "yes", "on", "t", "y":
			return true
		case "false", "0", "no", "off", "f", "n":
			return false
		}
	}
	b.fail("bool_type", name, "Input should be a valid boolean", v, nil)
	return def
}

// strList reads an optional list of strings.
func (b *body) strList(name string) []string {
	v, ok := b.value(name)
	if !ok || v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		b.fail("list_type", name, "Input should be a valid list", v, nil)
		return nil
	}
	out := make([]string, 0, len(list))
	for i, it := range list {
		s, ok := it.(string)
		if !ok {
			b.errs = append(b.errs, fieldError{Type: "string_type", Loc: []any{"body", name, i}, Msg: "Input should be a valid string", Input: it})
			continue
		}
		out = append(out, s)
	}
	return out
}

func (b *body) err() error {
	if len(b.errs) == 0 {
		return nil
	}
	return &validationError{b.errs}
}

// query validation: the same 422 shape with loc ["query", name].
type query struct {
	v    url.Values
	errs []fieldError
}

// integer reads an int parameter in [lo, hi] (def when absent).
func (q *query) integer(name string, def, lo, hi int64) int64 {
	s := q.v.Get(name)
	if !q.v.Has(name) {
		return def
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		q.errs = append(q.errs, fieldError{Type: "int_parsing", Loc: []any{"query", name}, Msg: "Input should be a valid integer, unable to parse string as an integer", Input: s})
		return def
	}
	if n < lo {
		q.errs = append(q.errs, fieldError{Type: "greater_than_equal", Loc: []any{"query", name}, Msg: fmt.Sprintf("Input should be greater than or equal to %d", lo), Input: s, Ctx: map[string]any{"ge": lo}})
		return def
	}
	if n > hi {
		q.errs = append(q.errs, fieldError{Type: "less_than_equal", Loc: []any{"query", name}, Msg: fmt.Sprintf("Input should be less than or equal to %d", hi), Input: s, Ctx: map[string]any{"le": hi}})
		return def
	}
	return n
}

// id reads an optional id-like parameter (a cursor): what no id can be is a 422.
func (q *query) id(name string) string {
	s := q.v.Get(name)
	if s != "" && !validID(s) {
		q.errs = append(q.errs, fieldError{Type: "value_error", Loc: []any{"query", name},
			Msg: fmt.Sprintf("Value error, must be at most %d printable characters", maxIDLen), Input: s})
		return ""
	}
	return s
}

// tags reads a comma-separated tag filter: trimmed, empty ones dropped,
// duplicates (case-insensitive, as the match is) removed, at most maxTags.
func (q *query) tags(name string) []string {
	s := q.v.Get(name)
	var out []string
	seen := map[string]bool{}
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if t == "" || seen[strings.ToLower(t)] {
			continue
		}
		if !printable(t) {
			q.errs = append(q.errs, fieldError{Type: "value_error", Loc: []any{"query", name},
				Msg: "Value error, tags must be printable text", Input: s})
			return nil
		}
		seen[strings.ToLower(t)] = true
		out = append(out, t)
	}
	if len(out) > maxTags {
		q.errs = append(q.errs, fieldError{Type: "too_long", Loc: []any{"query", name},
			Msg: fmt.Sprintf("Value error, at most %d distinct tags", maxTags), Input: s,
			Ctx: map[string]any{"max_length": maxTags, "actual_length": len(out)}})
		return nil
	}
	return out
}

// validID: what an id (or a cursor, which is an id) can be at all. Anything
// else cannot name a row, and is refused before it reaches the database
// (PostgreSQL rejects invalid UTF-8 and NUL in text).
func validID(s string) bool {
	return s != "" && len(s) <= maxIDLen && printable(s)
}

// printable: valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if !unicode.IsPrint(c) && c != ' ' {
			return false
		}
	}
	return true
}

func (q *query) boolean(name string) *bool {
	if !q.v.Has(name) {
		return nil
	}
	s := strings.ToLower(q.v.Get(name))
	switch s {
	case "true", "1", "yes", "on", "t", "y":
		t := true
		return &t
	case "false", "0", "no", "off", "f", "n":
		f := false
		return &f
	}
	q.errs = append(q.errs, fieldError{Type: "bool_parsing", Loc: []any{"query", name}, Msg: "Input should be a valid boolean, unable to interpret input", Input: q.v.Get(name)})
	return nil
}

func (q *query) required(name string) string {
	s := q.v.Get(name)
	if s == "" {
		q.errs = append(q.errs, fieldError{Type: "missing", Loc: []any{"query", name}, Msg: "Field required", Input: nil})
	}
	return s
}

func (q *query) err() error {
	if len(q.errs) == 0 {
		return nil
	}
	return &validationError{q.errs}
}

// ValidatePath applies upstream's relative-path rules and returns the normalized path.
func ValidatePath(p, field string) (string, error) {
	bad := func(reason, msg string) error {
		return errs.New(errs.InvalidPath, msg).With(map[string]any{"field": field, "reason": reason})
	}
	switch {
	case p == "":
		return "", bad("empty_path", field+" cannot be empty")
	case strings.ContainsRune(p, 0):
		return "", bad("null_byte", field+" contains invalid characters")
	case strings.HasPrefix(p, "/"):
		return "", bad("absolute_path", field+" must be a relative path")
	}
	var parts []string
	for _, part := range strings.Split(p, "/") {
		switch part {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", bad("path_traversal", field+" escapes workspace boundary")
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, part)
		}
	}
	if len(parts) == 0 {
		return ".", nil
	}
	return path.Join(parts...), nil
}
