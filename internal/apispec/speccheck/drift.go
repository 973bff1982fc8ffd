package speccheck

import (
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// FieldDrift compares a Go type a client decodes an answer into with the
// answer's schema: the json fields only the type has (it reads what is never
// written) and the properties only the schema has (written, never read), as
// dotted paths, recursing into objects and arrays of objects.
func FieldDrift(s *openapi3.SchemaRef, t reflect.Type) (onlyType, onlySchema []string) {
	fieldDrift("", s, t, &onlyType, &onlySchema)
	sort.Strings(onlyType)
	sort.Strings(onlySchema)
	return onlyType, onlySchema
}

func fieldDrift(at string, s *openapi3.SchemaRef, t reflect.Type, onlyType, onlySchema *[]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		if t.Kind() == reflect.Slice {
			if s.Value.Items == nil {
				return
			}
			s = s.Value.Items
		}
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() || len(s.Value.Properties) == 0 {
		return
	}
	fields := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		tag, ok := f.Tag.Lookup("json")
		name, _, _ := strings.Cut(tag, ",")
		if !ok || name == "-" || !f.IsExported() {
			continue
		}
		fields[name] = f.Type
	}
	for name, ft := range fields {
		p, ok := s.Value.Properties[name]
		if !ok {
			*onlyType = append(*onlyType, at+"."+name)
			continue
		}
		fieldDrift(at+"."+name, p, ft, onlyType, onlySchema)
	}
	for name := range s.Value.Properties {
		if _, ok := fields[name]; !ok {
			*onlySchema = append(*onlySchema, at+"."+name)
		}
	}
}
