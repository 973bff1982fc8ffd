package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// writeJSON writes v compactly, without HTML escaping (as upstream).
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"detail":"Internal Server Error"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// detail writes {"detail": msg}.
func detail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"detail": msg})
}

// fieldError is one FastAPI-style validation error item.
type fieldError struct {
	Type  string            `json:"type"`
	Loc   []any             `json:"loc"`
	Msg   string            `json:"msg"`
	Input any               `json:"input"`
	Ctx   map[string]string `json:"ctx,omitempty"`
}

func validation(w http.ResponseWriter, errs ...fieldError) {
	writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": errs})
}

// decodeJSON reads the body into dst. required lists keys that must be present
// and not null. It answers the request itself (422 for malformed or invalid
// bodies, 413 when too large) and returns false on failure.
func decodeJSON(w http.ResponseWriter, r *http.Request, dst any, required ...string) bool {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			detail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large (limit %d bytes)", tooBig.Limit))
			return false
		}
		detail(w, http.StatusBadRequest, "Could not read request body")
		return false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			validation(w, fieldError{Type: "json_invalid", Loc: []any{"body", syn.Offset}, Msg: "JSON decode error",
				Input: map[string]any{}, Ctx: map[string]string{"error": syn.Error()}})
			return false
		}
		validation(w, fieldError{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: nil})
		return false
	}
	var missing []fieldError
	for _, k := range required {
		if v, ok := raw[k]; !ok || string(v) == "null" {
			missing = append(missing, fieldError{Type: "missing", Loc: []any{"body", k}, Msg: "Field required", Input: nil})
		}
	}
	if len(missing) > 0 {
		validation(w, missing...)
		return false
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "body"
			}
			loc := []any{"body"}
			for _, p := range strings.Split(field, ".") {
				loc = append(loc, p)
			}
			validation(w, fieldError{Type: te.Type.Kind().String() + "_type", Loc: loc,
				Msg: fmt.Sprintf("Input should be a valid %s", te.Type.String()), Input: nil})
			return false
		}
		validation(w, fieldError{Type: "value_error", Loc: []any{"body"}, Msg: err.Error(), Input: nil})
		return false
	}
	return true
}
