// Package apispec declares a server's routes for its OpenAPI 3.0 document (a
// table of operations and the Go types its handlers encode) and serves a
// self-contained page that renders the document. Bay and Ship both describe
// their routes with it. The document itself is built from these declarations
// by package specgen when the repository's copy is regenerated, not in the
// servers: they serve that copy (docs/openapi), so they do not carry the
// generator and its schema libraries.
package apispec

import (
	_ "embed"
	"net/http"
	"regexp"
	"strings"
)

// PatternExtension names the operation extension that carries the ServeMux
// pattern an OpenAPI operation documents (the Checker routes with it).
const PatternExtension = "x-pattern"

// Param is a query or header parameter.
type Param struct {
	Name, In, Type, Desc string // In: query or header; Type: string, integer or boolean
	Required             bool
}

// Query is an optional query parameter.
func Query(name, typ, desc string) Param {
	return Param{Name: name, In: "query", Type: typ, Desc: desc}
}

// RequiredQuery is a query parameter that must be present.
func RequiredQuery(name, typ, desc string) Param {
	return Param{Name: name, In: "query", Type: typ, Desc: desc, Required: true}
}

// Header is an optional string header.
func Header(name, desc string) Param {
	return Param{Name: name, In: "header", Type: "string", Desc: desc}
}

// Raw is a body that is not (only) JSON. Type "*/*" is any body (no schema).
type Raw struct {
	Type string // media type
	Desc string
}

// FreeForm is a JSON object whose shape the text describes (a handler that
// writes a map or an anonymous struct).
type FreeForm string

// NoBody is an answer without a body; the text describes it.
type NoBody string

// JSONOrStream is JSON, or Server-Sent Events when asked for with Accept.
type JSONOrStream struct{ JSON any }

// Described is a body with its own description (an error answer).
type Described struct {
	Desc string
	Body any
}

// Operation documents one pattern registered on a ServeMux.
type Operation struct {
	Pattern     string   // exactly as registered
	Methods     []string // documented methods of a method-less pattern
	Tag         string
	Summary     string
	Description string
	Public      bool // no credentials (else the bearer scheme)
	Params      []Param
	Request     any // JSON body: a Go value of its shape, a Raw, a FreeForm, or nil
	// Responses by status: a Go value the handler encodes, or Raw, FreeForm,
	// NoBody, JSONOrStream, Described. Status 0 is "default".
	Responses map[int]any
}

// Info is the document's header.
type Info struct {
	Title, Version, Description string
	Bearer                      string // description of the bearer scheme ("" = none)
}

var wildcardRe = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(\.\.\.)?\}`)

// SpecPath turns a ServeMux pattern into its method (or "") and OpenAPI path.
func SpecPath(pattern string) (method, p string) {
	method, p, ok := strings.Cut(pattern, " ")
	if !ok {
		method, p = "", pattern
	}
	p = strings.ReplaceAll(p, "{$}", "")
	return method, wildcardRe.ReplaceAllString(p, "{$1}")
}

// PathParams lists the wildcards of a pattern.
func PathParams(pattern string) []string {
	var out []string
	for _, m := range wildcardRe.FindAllStringSubmatch(pattern, -1) {
		out = append(out, m[1])
	}
	return out
}

// AllMethods are the methods an operation documents.
func (op Operation) AllMethods() []string {
	if m, _ := SpecPath(op.Pattern); m != "" {
		return []string{m}
	}
	return op.Methods
}

//go:embed docs.html
var docsHTML []byte

// ServeDocs answers with the self-contained page (no outside assets; it
// fetches openapi.json beside it).
func ServeDocs(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy",
		"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'")
	_, _ = w.Write(docsHTML)
}
