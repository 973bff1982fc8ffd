// Package speccheck holds answers and client types to an OpenAPI document
// built by apispec (for tests; kept out of the servers' binaries).
package speccheck

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/shipyard/shipyard/internal/apispec"
)

// Checker checks a server's answers against its document: the status is one
// the operation declares, the media type is declared, and a JSON body matches
// the schema. Requests are routed with the same ServeMux patterns the server
// registers (the operations' x-pattern), so routing cannot disagree.
type Checker struct {
	mux    *http.ServeMux
	routes map[string]*routers.Route // method + " " + pattern
}

// NewChecker prepares a checker for doc (built by specgen.Build).
func NewChecker(doc *openapi3.T) (*Checker, error) {
	c := &Checker{mux: http.NewServeMux(), routes: map[string]*routers.Route{}}
	patterns := map[string]bool{}
	for p, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			pattern, _ := op.Extensions[apispec.PatternExtension].(string)
			if pattern == "" {
				return nil, fmt.Errorf("%s %s: no %s", method, p, apispec.PatternExtension)
			}
			if !patterns[pattern] {
				patterns[pattern] = true
				c.mux.HandleFunc(pattern, func(http.ResponseWriter, *http.Request) {})
			}
			c.routes[method+" "+pattern] = &routers.Route{Spec: doc, Path: p, PathItem: item, Method: method, Operation: op}
		}
	}
	return c, nil
}

// Check validates one answer to req. Requests no documented route matches
// (the server's own 404/405 for unknown paths) are not checked.
func (c *Checker) Check(req *http.Request, status int, header http.Header, body []byte) error {
	p := req.URL.EscapedPath()
	clean := path.Clean(p)
	if strings.HasSuffix(p, "/") && clean != "/" {
		clean += "/"
	}
	if clean != p {
		return nil // not routed: ServeMux would redirect, Bay answers 404
	}
	_, pattern := c.mux.Handler(req)
	if pattern == "" {
		return nil
	}
	method := req.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	route := c.routes[method+" "+pattern]
	if route == nil {
		return fmt.Errorf("%s %s: method %s of %q is not documented", req.Method, p, method, pattern)
	}
	ctype := header.Get("Content-Type")
	mt, _, _ := mime.ParseMediaType(ctype)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, Route: route},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if mt != "application/json" {
		// Not JSON (a stream, a file, a redirect): the status and media type
		// must be documented; the body has no schema to check.
		in.Options.ExcludeResponseBody = true
		r := route.Operation.Responses.Status(status)
		if r != nil && len(r.Value.Content) > 0 && ctype != "" && r.Value.Content.Get(ctype) == nil {
			return fmt.Errorf("%s %s: %d answered %q, not documented", req.Method, p, status, ctype)
		}
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		return fmt.Errorf("%s %s (%s %s): %d does not match the OpenAPI document: %w\nbody: %.600s",
			req.Method, p, route.Method, route.Path, status, err, body)
	}
	return nil
}
