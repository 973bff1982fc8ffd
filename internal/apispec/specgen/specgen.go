// Package specgen builds an OpenAPI 3.0 document from apispec's operations
// and the Go types a server's handlers encode, and keeps the repository's
// copy (the one the servers embed and serve) equal to it.
//
// Schemas come from reflection over json tags (kin-openapi's openapi3gen)
// with what it leaves out added: a field without omitempty is required; a
// pointer, slice, map or interface is nullable (Go writes nil ones as null);
// answer objects are closed (additionalProperties: false), so a field written
// but not in the type, or in the type but not written, is drift.
package specgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3gen"

	"github.com/shipyard/shipyard/internal/apispec"
)

// Build makes the document; its $refs are resolved (ready to validate).
func Build(info apispec.Info, ops []apispec.Operation) (*openapi3.T, error) {
	g := newGen()
	doc := &openapi3.T{
		OpenAPI:    "3.0.3",
		Info:       &openapi3.Info{Title: info.Title, Version: info.Version, Description: info.Description},
		Paths:      openapi3.NewPaths(),
		Components: &openapi3.Components{Schemas: openapi3.Schemas{}},
	}
	if info.Bearer != "" {
		doc.Components.SecuritySchemes = openapi3.SecuritySchemes{"bearer": &openapi3.SecuritySchemeRef{
			Value: &openapi3.SecurityScheme{Type: "http", Scheme: "bearer", Description: info.Bearer}}}
	}
	for _, op := range ops {
		_, p := apispec.SpecPath(op.Pattern)
		methods := op.AllMethods()
		if len(methods) == 0 {
			return nil, fmt.Errorf("%s: a method-less pattern needs Methods", op.Pattern)
		}
		for _, m := range methods {
			o, err := g.operation(op, m, info.Bearer != "")
			if err != nil {
				return nil, fmt.Errorf("%s: %w", op.Pattern, err)
			}
			item := doc.Paths.Value(p)
			if item == nil {
				item = &openapi3.PathItem{}
				doc.Paths.Set(p, item)
			}
			if item.GetOperation(m) != nil {
				return nil, fmt.Errorf("%s %s documented twice", m, p)
			}
			item.SetOperation(m, o)
		}
	}
	if len(g.errs) > 0 {
		return nil, g.errs[0]
	}
	for name, s := range g.components {
		doc.Components.Schemas[name] = s
	}
	// The generator leaves $refs unresolved; a round trip through the loader
	// resolves them (validation and answer checks need the values).
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return openapi3.NewLoader().LoadFromData(b)
}

// gen turns Go values into schemas: named structs become components.
type gen struct {
	components openapi3.Schemas
	names      map[string]reflect.Type
	errs       []error
}

func newGen() *gen {
	return &gen{components: openapi3.Schemas{}, names: map[string]reflect.Type{}}
}

// typeName names a component: the Go name without a JSON suffix, capitalised.
func (g *gen) typeName(t reflect.Type) string {
	n := strings.TrimSuffix(t.Name(), "JSON")
	if n == "" {
		return ""
	}
	n = strings.ToUpper(n[:1]) + n[1:]
	if prev, ok := g.names[n]; ok && prev != t {
		g.errs = append(g.errs, fmt.Errorf("schema name %s for both %v and %v", n, prev, t))
	}
	g.names[n] = t
	return n
}

var timeType = reflect.TypeFor[time.Time]()

func customize(strict bool) openapi3gen.SchemaCustomizerFn {
	return func(_ string, t reflect.Type, _ reflect.StructTag, s *openapi3.Schema) error {
		switch t.Kind() {
		case reflect.Slice, reflect.Map, reflect.Interface:
			if t != reflect.TypeFor[[]byte]() { // json.RawMessage is any JSON, null included
				s.Nullable = true
			}
		case reflect.Struct:
			if t == timeType {
				return nil
			}
			s.Required = nil
			for _, f := range reflect.VisibleFields(t) {
				tag, ok := f.Tag.Lookup("json")
				if !ok || !f.IsExported() || tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if name == "" {
					name = f.Name
				}
				if !slices.Contains(strings.Split(opts, ","), "omitempty") && !slices.Contains(s.Required, name) &&
					!viaPointer(t, f.Index) {
					s.Required = append(s.Required, name)
				}
			}
			if s.Type == nil {
				s.Type = &openapi3.Types{"object"}
			}
			if strict {
				no := false
				s.AdditionalProperties = openapi3.AdditionalProperties{Has: &no}
			}
		}
		return nil
	}
}

// viaPointer reports whether the field at index is promoted through an
// embedded pointer (absent when the pointer is nil).
func viaPointer(t reflect.Type, index []int) bool {
	for _, i := range index[:len(index)-1] {
		f := t.Field(i)
		if f.Type.Kind() == reflect.Pointer {
			return true
		}
		t = f.Type
	}
	return false
}

// schema generates v's schema; strict (answers) closes objects. Request
// types get their own components (suffix Input unless named …Request), open.
func (g *gen) schema(v any, strict bool) (*openapi3.SchemaRef, error) {
	og := openapi3gen.NewGenerator(
		openapi3gen.SchemaCustomizer(customize(strict)),
		openapi3gen.CreateTypeNameGenerator(func(t reflect.Type) string {
			n := g.typeName(t)
			if !strict && n != "" && !strings.HasSuffix(n, "Request") {
				n += "Input"
			}
			return n
		}),
		openapi3gen.CreateComponentSchemas(openapi3gen.ExportComponentSchemasOptions{
			ExportComponentSchemas: true, ExportTopLevelSchema: true}),
	)
	schemas := openapi3.Schemas{}
	ref, err := og.NewSchemaRefForValue(v, schemas)
	if err != nil {
		return nil, err
	}
	for name, s := range schemas {
		g.components[name] = s
	}
	return ref, nil
}

func (g *gen) operation(op apispec.Operation, method string, bearer bool) (*openapi3.Operation, error) {
	o := &openapi3.Operation{
		Summary:     op.Summary,
		Description: op.Description,
		Tags:        []string{op.Tag},
		OperationID: operationID(method, op.Pattern),
		Responses:   openapi3.NewResponses(),
		Extensions:  map[string]any{apispec.PatternExtension: op.Pattern},
	}
	if bearer {
		if op.Public {
			o.Security = &openapi3.SecurityRequirements{}
		} else {
			o.Security = &openapi3.SecurityRequirements{{"bearer": []string{}}}
		}
	}
	for _, name := range apispec.PathParams(op.Pattern) {
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: openapi3.NewPathParameter(name).
			WithSchema(openapi3.NewStringSchema())})
	}
	for _, p := range op.Params {
		var s *openapi3.Schema
		switch p.Type {
		case "integer":
			s = openapi3.NewIntegerSchema()
		case "boolean":
			s = openapi3.NewBoolSchema()
		case "number":
			s = openapi3.NewFloat64Schema()
		default:
			s = openapi3.NewStringSchema()
		}
		o.Parameters = append(o.Parameters, &openapi3.ParameterRef{Value: &openapi3.Parameter{
			Name: p.Name, In: p.In, Description: p.Desc, Required: p.Required,
			Schema: &openapi3.SchemaRef{Value: s}}})
	}
	if op.Request != nil {
		content, err := g.content(op.Request, false)
		if err != nil {
			return nil, err
		}
		o.RequestBody = &openapi3.RequestBodyRef{Value: &openapi3.RequestBody{Content: content}}
	}
	for status, v := range op.Responses {
		desc := http.StatusText(status)
		switch b := v.(type) {
		case apispec.NoBody:
			desc = string(b)
		case apispec.Raw:
			desc = b.Desc
		case apispec.Described:
			desc, v = b.Desc, b.Body
		}
		r := &openapi3.Response{Description: &desc}
		if _, empty := v.(apispec.NoBody); !empty {
			content, err := g.content(v, true)
			if err != nil {
				return nil, err
			}
			r.Content = content
		}
		key := strconv.Itoa(status)
		if status == 0 {
			key = "default"
		}
		o.Responses.Set(key, &openapi3.ResponseRef{Value: r})
	}
	return o, nil
}

// content is a request or answer body's media types.
func (g *gen) content(v any, strict bool) (openapi3.Content, error) {
	switch v := v.(type) {
	case apispec.Raw:
		if v.Type == "*/*" {
			return openapi3.Content{v.Type: openapi3.NewMediaType()}, nil
		}
		s := openapi3.NewSchema()
		if v.Type != "application/json" {
			s = openapi3.NewStringSchema()
			s.Format = "binary"
		}
		s.Description = v.Desc
		return openapi3.Content{v.Type: openapi3.NewMediaType().WithSchema(s)}, nil
	case apispec.FreeForm:
		s := openapi3.NewObjectSchema()
		s.Description = string(v)
		return openapi3.NewContentWithJSONSchema(s), nil
	case apispec.JSONOrStream:
		c, err := g.content(v.JSON, strict)
		if err != nil {
			return nil, err
		}
		ev := openapi3.NewStringSchema()
		ev.Description = "Server-Sent Events (with Accept: text/event-stream)"
		c["text/event-stream"] = openapi3.NewMediaType().WithSchema(ev)
		return c, nil
	}
	ref, err := g.schema(v, strict)
	if err != nil {
		return nil, err
	}
	return openapi3.NewContentWithJSONSchemaRef(ref), nil
}

// operationID is a stable id of method and path words, e.g. post_v1_sandboxes_id_python_exec.
func operationID(method, pattern string) string {
	_, p := apispec.SpecPath(pattern)
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, r := range p {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '/' || r == '_' || r == '-' || r == '.':
			if !strings.HasSuffix(b.String(), "_") {
				b.WriteByte('_')
			}
		}
	}
	return strings.TrimSuffix(b.String(), "_")
}

// Golden validates doc and compares its indented JSON with the file at path,
// the copy kept in the repository (the one the server embeds and serves, and
// readers and client generators use); with update it writes the file instead. The error says how to refresh it.
func Golden(doc *openapi3.T, path string, update bool) error {
	if err := doc.Validate(context.Background()); err != nil {
		return fmt.Errorf("openapi document: %w", err)
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if update {
		return os.WriteFile(path, b, 0o644)
	}
	old, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(old, b) {
		return fmt.Errorf("%s is not the generated document (run the test with SHIPYARD_UPDATE_OPENAPI=1 to refresh it)", path)
	}
	return nil
}
