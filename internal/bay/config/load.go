package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// LookupEnv looks up an environment variable, like os.LookupEnv.
type LookupEnv = func(string) (string, bool)

// Environment variables that are not config keys.
const (
	EnvConfigFile = "BAY_CONFIG_FILE"
	EnvAPIKey     = "BAY_API_KEY"
	EnvDataDir    = "BAY_DATA_DIR"
	EnvHostname   = "HOSTNAME"
)

// defaultSearchPath is where Load looks for a file when BAY_CONFIG_FILE is unset.
var defaultSearchPath = []string{"config.yaml", "/etc/bay/config.yaml"}

// Load reads $BAY_CONFIG_FILE, else ./config.yaml, else /etc/bay/config.yaml,
// else uses the built-in defaults; then applies the environment (which wins)
// and validates. lookupEnv is usually os.LookupEnv or EnvLookup(os.Environ());
// nil means an empty environment.
func Load(lookupEnv LookupEnv) (*Config, error) {
	return load(lookupEnv, defaultSearchPath)
}

func load(lookupEnv LookupEnv, search []string) (*Config, error) {
	env := caseless(lookupEnv)
	if path, ok := env(EnvConfigFile); ok && path != "" {
		return LoadFile(path, lookupEnv)
	}
	for _, path := range search {
		st, err := os.Stat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return nil, fmt.Errorf("config: %w", err)
		case st.IsDir():
			return nil, fmt.Errorf("config: %s is a directory", path)
		}
		return LoadFile(path, lookupEnv)
	}
	return build(nil, "", lookupEnv)
}

// LoadFile reads the YAML file at path (which must exist), applies the
// environment and validates.
func LoadFile(path string, lookupEnv LookupEnv) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return build(data, path, lookupEnv)
}

// EnvLookup returns a case-insensitive lookup over an environment list in
// os.Environ() form.
func EnvLookup(environ []string) LookupEnv {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[strings.ToUpper(k)] = v
	}
	return func(name string) (string, bool) {
		v, ok := m[strings.ToUpper(name)]
		return v, ok
	}
}

// UnusedEnv returns the names of BAY_* variables in environ (os.Environ()
// form) that match no config key, sorted; callers log them as likely typos.
func UnusedEnv(environ []string) []string {
	known := map[string]bool{EnvConfigFile: true, EnvAPIKey: true, EnvDataDir: true, "BAY_PROFILES": true}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for _, f := range reflect.VisibleFields(t) {
			key := yamlKey(f)
			if key == "" {
				continue
			}
			name := prefix + "__" + strings.ToUpper(key)
			if prefix == "BAY" {
				name = "BAY_" + strings.ToUpper(key)
			}
			known[name] = true
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, name)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "BAY")
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		up := strings.ToUpper(k)
		if strings.HasPrefix(up, "BAY_") && !known[up] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// caseless wraps a lookup to try NAME and then name.
func caseless(lookup LookupEnv) LookupEnv {
	if lookup == nil {
		return func(string) (string, bool) { return "", false }
	}
	return func(name string) (string, bool) {
		if v, ok := lookup(name); ok {
			return v, true
		}
		return lookup(strings.ToLower(name))
	}
}

// build is the single path from (file bytes, environment) to a validated Config.
func build(data []byte, source string, lookupEnv LookupEnv) (*Config, error) {
	env := caseless(lookupEnv)
	cfg := defaults()
	cfg.Source = source
	d := &decoder{}
	profiles := defaultProfiles()

	if len(data) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			return nil, fmt.Errorf("config %s: %w", source, err)
		}
		if raw, ok := d.decodeTop(&doc, cfg, source); ok {
			profiles = raw
		}
	}
	if raw, ok := d.applyEnv(cfg, env); ok {
		profiles = raw
	}
	if v, ok := env(EnvAPIKey); ok && v != "" {
		cfg.Security.APIKey = v
	}
	if v, ok := env(EnvDataDir); ok && v != "" {
		cfg.DataDir = v
	}
	if cfg.GC.InstanceID == "" {
		cfg.GC.InstanceID = "bay"
		if h, ok := env(EnvHostname); ok && strings.TrimSpace(h) != "" {
			cfg.GC.InstanceID = strings.TrimSpace(h)
		}
	}

	if cfg.Replica.ID == "" {
		host := "bay"
		if h, ok := env(EnvHostname); ok && strings.TrimSpace(h) != "" {
			host = strings.TrimSpace(h)
		}
		cfg.Replica.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}

	errs := d.errs
	errs = append(errs, cfg.normalize()...)
	errs = append(errs, cfg.validate()...)
	errs = append(errs, cfg.buildProfiles(profiles)...)
	cfg.Warnings = append(d.warnings, cfg.Warnings...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

// decoder decodes YAML nodes into the config structs, naming keys in errors
// and collecting unknown keys as warnings.
type decoder struct {
	errs     []error
	warnings []string
}

func (d *decoder) errorf(path, format string, a ...any) {
	d.errs = append(d.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, a...)))
}

// decodeTop decodes the document root into cfg. Unknown top-level keys are
// an error. It returns the file's profiles when the file has them.
func (d *decoder) decodeTop(doc *yaml.Node, cfg *Config, source string) ([]profileYAML, bool) {
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, false
		}
		root = root.Content[0]
	}
	root = resolveAlias(root)
	if isNull(root) {
		return nil, false
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(source, "line %d: the top level must be a mapping of sections", root.Line)
		return nil, false
	}
	var profiles []profileYAML
	hasProfiles := false
	fields := fieldsByKey(reflect.TypeFor[Config]())
	cv := reflect.ValueOf(cfg).Elem()
	for _, kv := range mappingPairs(root) {
		key, val := kv[0].Value, kv[1]
		if key == "profiles" {
			if isNull(val) {
				continue
			}
			hasProfiles = true
			profiles = nil
			d.decode(val, reflect.ValueOf(&profiles).Elem(), "profiles", "")
			if profiles == nil {
				profiles = []profileYAML{}
			}
			continue
		}
		idx, ok := fields[key]
		if !ok {
			d.errorf(key, "unknown top-level key (%s line %d)", source, kv[0].Line)
			continue
		}
		d.decode(val, cv.FieldByIndex(idx), key, "")
	}
	return profiles, hasProfiles
}

// decode decodes n into v. path names the key for messages; source, when
// not "", says where the value came from (an environment variable).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path, source string) {
	n = resolveAlias(n)
	if isNull(n) {
		return // null keeps the default
	}
	where := path
	if source != "" {
		where = source + " (" + path + ")"
	}
	if v.CanAddr() {
		if _, ok := v.Addr().Interface().(yaml.Unmarshaler); ok { // a key of several shapes (profile network)
			d.scalar(n, v, where)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path, source)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(where, "line %d: expected a mapping", n.Line)
			return
		}
		fields := fieldsByKey(v.Type())
		for _, kv := range mappingPairs(n) {
			key := kv[0].Value
			idx, ok := fields[key]
			if !ok {
				msg := fmt.Sprintf("unknown key %q ignored", path+"."+key)
				if source != "" {
					msg += " (from " + source + ")"
				}
				d.warnings = append(d.warnings, msg)
				continue
			}
			d.decode(kv[1], v.FieldByIndex(idx), path+"."+key, source)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(where, "line %d: expected a list", n.Line)
			return
		}
		if v.Type().Elem().Kind() != reflect.Struct {
			d.scalar(n, v, where)
			return
		}
		out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), source)
		}
		v.Set(out)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(where, "line %d: expected a mapping", n.Line)
			return
		}
		d.scalar(n, v, where)
	default:
		if n.Kind != yaml.ScalarNode {
			d.errorf(where, "line %d: expected a single value", n.Line)
			return
		}
		d.scalar(n, v, where)
	}
}

// scalar lets yaml decode a leaf (or a list/map of scalars) into a fresh value.
func (d *decoder) scalar(n *yaml.Node, v reflect.Value, where string) {
	tmp := reflect.New(v.Type())
	if err := n.Decode(tmp.Interface()); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			d.errorf(where, "%s", strings.Join(te.Errors, "; "))
		} else {
			d.errorf(where, "%v", err)
		}
		return
	}
	v.Set(tmp.Elem())
}

// applyEnv applies BAY_* variables over cfg. It returns the profiles from
// BAY_PROFILES when that is set.
func (d *decoder) applyEnv(cfg *Config, env LookupEnv) ([]profileYAML, bool) {
	d.envStruct(reflect.ValueOf(cfg).Elem(), "BAY", "", env)
	raw, ok := env("BAY_PROFILES")
	if !ok || strings.TrimSpace(raw) == "" {
		return nil, false
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(raw), &n); err != nil {
		d.errorf("BAY_PROFILES", "invalid JSON: %v", err)
		return nil, false
	}
	var profiles []profileYAML
	if len(n.Content) > 0 {
		d.decode(n.Content[0], reflect.ValueOf(&profiles).Elem(), "profiles", "BAY_PROFILES")
	}
	if profiles == nil {
		profiles = []profileYAML{}
	}
	return profiles, true
}

func (d *decoder) envStruct(v reflect.Value, prefix, path string, env LookupEnv) {
	for _, f := range reflect.VisibleFields(v.Type()) {
		key := yamlKey(f)
		if key == "" {
			continue
		}
		name := prefix + "__" + strings.ToUpper(key)
		kpath := path + "." + key
		if prefix == "BAY" {
			name, kpath = "BAY_"+strings.ToUpper(key), key
		}
		fv := v.FieldByIndex(f.Index)
		raw, set := env(name)
		if f.Type.Kind() == reflect.Struct {
			if set && strings.TrimSpace(raw) != "" {
				var n yaml.Node
				if err := yaml.Unmarshal([]byte(raw), &n); err != nil || len(n.Content) == 0 {
					d.errorf(name, "expected a JSON object for %s", kpath)
				} else {
					d.decode(n.Content[0], fv, kpath, name)
				}
			}
			d.envStruct(fv, name, kpath, env)
			continue
		}
		if set {
			if err := setFromEnv(fv, raw); err != nil {
				d.errorf(name, "%v (%s)", err, kpath)
			}
		}
	}
}

// setFromEnv parses an environment string into v by v's type.
func setFromEnv(v reflect.Value, raw string) error {
	s := strings.TrimSpace(raw)
	if v.Kind() != reflect.String && s == "" {
		return nil // empty unsets: keep the file/default value
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := parseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(n) {
			return fmt.Errorf("invalid integer %q", raw)
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid number %q", raw)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type")
		}
		list, err := parseList(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(list))
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "y", "on":
		return true, nil
	case "false", "0", "no", "n", "off":
		return false, nil
	}
	return false, fmt.Errorf("invalid boolean %q (want true/false, 1/0, yes/no, on/off)", s)
}

// parseList accepts a JSON array of strings or a comma-separated string.
func parseList(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var list []string
		if err := yaml.Unmarshal([]byte(s), &list); err != nil {
			return nil, fmt.Errorf("invalid JSON list %q", s)
		}
		if list == nil {
			list = []string{}
		}
		return list, nil
	}
	list := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			list = append(list, part)
		}
	}
	return list, nil
}

// yamlKey is the yaml key of a struct field; "" for untagged, "-" and inline
// embedding holders (their fields are visible through reflect.VisibleFields).
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag, ok := f.Tag.Lookup("yaml")
	if !ok {
		return ""
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "-" || strings.Contains(opts, "inline") {
		return ""
	}
	return name
}

// fieldsByKey maps yaml keys to field indexes, including fields of inlined structs.
func fieldsByKey(t reflect.Type) map[string][]int {
	m := map[string][]int{}
	for _, f := range reflect.VisibleFields(t) {
		if key := yamlKey(f); key != "" {
			m[key] = f.Index
		}
	}
	return m
}

// mappingPairs returns the key/value pairs of a mapping, expanding merge keys
// (<<: *anchor); explicit keys come after merged ones, so they win.
func mappingPairs(n *yaml.Node) [][2]*yaml.Node {
	var merged, own [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Tag == "!!merge" || (k.Value == "<<" && k.Style == 0 && k.Tag != "!!str") {
			v = resolveAlias(v)
			switch v.Kind {
			case yaml.MappingNode:
				merged = append(merged, mappingPairs(v)...)
			case yaml.SequenceNode:
				for _, m := range v.Content {
					if m = resolveAlias(m); m.Kind == yaml.MappingNode {
						merged = append(merged, mappingPairs(m)...)
					}
				}
			}
			continue
		}
		own = append(own, [2]*yaml.Node{k, v})
	}
	return append(merged, own...)
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}
