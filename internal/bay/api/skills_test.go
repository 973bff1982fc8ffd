package api

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shipyard/shipyard/internal/bay/errs"
)

func candidateBody(t testing.TB, raw string) (*body, error) {
	t.Helper()
	r := httptest.NewRequest("POST", "/v1/skills/candidates", bytes.NewReader([]byte(raw)))
	return readBody(r, 1<<20, false)
}

func TestReadCandidate(t *testing.T) {
	long := strings.Repeat("k", maxSkillKeyChars+1)
	for _, tc := range []struct {
		name, body string
		want       string // "" ok, "422:<type>", or an errs code
	}{
		{"ok", `{"skill_key":"k","source_execution_ids":["exec-1"],"preconditions":{"a":1}}`, ""},
		{"missing key", `{"source_execution_ids":["exec-1"]}`, "422:missing"},
		{"missing ids", `{"skill_key":"k"}`, "422:missing"},
		{"ids not a list", `{"skill_key":"k","source_execution_ids":"exec-1"}`, "422:list_type"},
		{"id not a string", `{"skill_key":"k","source_execution_ids":[1]}`, "422:string_type"},
		{"key too long", `{"skill_key":"` + long + `","source_execution_ids":["e"]}`, "422:string_too_long"},
		{"NUL in summary", `{"skill_key":"k","source_execution_ids":["e"],"summary":"a\u0000b"}`, "422:string_pattern_mismatch"},
		{"preconditions not an object", `{"skill_key":"k","source_execution_ids":["e"],"preconditions":[1]}`, "422:dict_type"},
		{"id with a comma", `{"skill_key":"k","source_execution_ids":["a,b"]}`, string(errs.Validation)},
		{"id with a control character", `{"skill_key":"k","source_execution_ids":["a\nb"]}`, string(errs.Validation)},
		{"too many ids", `{"skill_key":"k","source_execution_ids":[` + strings.Repeat(`"e",`, maxSourceExecution) + `"e"]}`, "422:too_long"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := candidateBody(t, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = readCandidate(b)
			got := ""
			if ve, ok := err.(*validationError); ok {
				got = "422:" + ve.list[0].Type
			} else if e, ok := errs.As(err); ok {
				got = string(e.Code)
			} else if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q (%v)", got, tc.want, err)
			}
		})
	}
}

// FuzzReadCandidate: any body either fails cleanly or yields bounded,
// NUL-free text and ids that can name a row.
func FuzzReadCandidate(f *testing.F) {
	for _, s := range []string{
		`{"skill_key":"k","source_execution_ids":["exec-1"],"summary":"s","preconditions":{"a":[1]}}`,
		`{"skill_key":"","source_execution_ids":[]}`, `[]`, `{"skill_key":1}`, `{"source_execution_ids":[null]}`,
		`{"skill_key":"k","source_execution_ids":["\u0000"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := candidateBody(t, string(data))
		if err != nil {
			return
		}
		in, err := readCandidate(b)
		if err != nil {
			if _, ok := err.(*validationError); !ok && !errs.Is(err, errs.Validation) {
				t.Fatalf("unexpected error %T %v", err, err)
			}
			return
		}
		for _, s := range []*string{&in.SkillKey, in.ScenarioKey, in.PayloadRef, in.Summary, in.UsageNotes} {
			if s != nil && (strings.ContainsRune(*s, 0) || utf8.RuneCountInString(*s) > maxSkillTextChars) {
				t.Fatalf("unbounded text %q", *s)
			}
		}
		if len(in.SourceExecutionIDs) > maxSourceExecution {
			t.Fatalf("%d ids", len(in.SourceExecutionIDs))
		}
		for _, id := range in.SourceExecutionIDs {
			if !validID(id) || strings.Contains(id, ",") {
				t.Fatalf("id %q", id)
			}
		}
	})
}
