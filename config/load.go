package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// defaultFile is read from the working directory when no other file is
// named; it is optional so that a fresh checkout runs with no file at all.
const defaultFile = "supportbot.yaml"

// configFlag and configEnv name the file to read. The environment variable
// exists for containers, where adding a flag is harder than adding a
// variable; the flag still wins.
const (
	configFlag = "config"
	configEnv  = envPrefix + "CONFIG"
)

// BindFlags registers --config and one flag per key, named exactly like the
// key (--bitrix.webhook_url, --support.agents=1,2,3), so that the README
// table, the environment and the command line share one vocabulary.
//
// The flags are registered with zero defaults and the real default is only
// mentioned in the usage text: Load reads a flag only if the user set it,
// so a flag can never silently override the file or the environment.
// Call it once per FlagSet; pflag panics on a redefined flag.
func BindFlags(fs *pflag.FlagSet) {
	fs.String(configFlag, "", "configuration file (default ./"+defaultFile+" if it exists; env "+configEnv+")")
	for _, k := range keys {
		// Descriptions are Markdown for the README; pflag would take the
		// first `quoted` word as the value's placeholder name.
		usage := strings.ReplaceAll(k.Description, "`", "") + " (env " + k.Env
		if k.Default != nil {
			usage += fmt.Sprintf(", default %s", formatDefault(k.Default))
		}
		usage += ")"
		switch fields[k.Name].typ.Kind() {
		case reflect.String:
			fs.String(k.Flag, "", usage)
		case reflect.Int:
			fs.Int(k.Flag, 0, usage)
		case reflect.Int64:
			fs.Int64(k.Flag, 0, usage)
		case reflect.Float64:
			fs.Float64(k.Flag, 0, usage)
		case reflect.Slice:
			// A string slice rather than an int64 slice: it accepts an empty
			// value (--access.admins= clears a list set in the file), and
			// Load then reports bad entries with the key's name.
			fs.StringSlice(k.Flag, nil, usage+"; comma-separated, may be repeated")
		default:
			panic("config: no flag type for " + k.Name)
		}
	}
}

func formatDefault(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

// Load is LoadFrom with the process environment.
func Load(fs *pflag.FlagSet) (*Config, error) {
	return LoadFrom(fs, os.Environ())
}

// LoadFrom builds the Config from, in rising precedence, the defaults in
// Keys, the file (--config, else SUPPORTBOT_CONFIG — either must exist —
// else ./supportbot.yaml if present), the SUPPORTBOT_* variables in environ
// and the flags in fs that the user set; then it validates the result. fs
// may be nil.
//
// environ is explicit, rather than read by viper.BindEnv, so that tests can
// run many loads in parallel without touching the process environment; for
// the same reason every call uses its own *viper.Viper. Environment values
// and flags go into viper's override layer, flags last, which gives
// flag > env > file > default without relying on AutomaticEnv (which does
// not feed Unmarshal) or on BindPFlag (whose unset flags would compete with
// the file).
//
// Every problem is reported at once, each naming its key, so one edit can
// fix them all. Empty environment variables count as unset, as in viper;
// an empty flag value (--bitrix.webhook_url=) does override.
func LoadFrom(fs *pflag.FlagSet, environ []string) (*Config, error) {
	env := parseEnviron(environ)
	v := viper.New()
	source := make(map[string]string, len(keys)) // key -> where its value came from, for errors
	var errs []error

	for _, k := range keys {
		if k.Default != nil {
			v.SetDefault(k.Name, k.Default)
		}
	}

	if path, required := configPath(fs, env); path != "" || required {
		values, err := readFile(path, required)
		if err != nil && values == nil {
			return nil, err
		}
		// Unknown keys are reported together with every other problem
		// below; the keys that were recognised still apply, so that the
		// rest of the report is about this file rather than the defaults.
		if err != nil {
			errs = append(errs, err)
		}
		if len(values) > 0 {
			if err := v.MergeConfigMap(nest(values)); err != nil {
				return nil, fmt.Errorf("config file %s: %w", path, err)
			}
			for name := range values {
				source[name] = "file " + path
			}
		}
	}

	for _, k := range keys {
		if val, ok := env[k.Env]; ok && val != "" {
			v.Set(k.Name, val)
			source[k.Name] = "env " + k.Env
		}
	}

	if fs != nil {
		for _, k := range keys {
			f := fs.Lookup(k.Flag)
			if f == nil || !f.Changed {
				continue
			}
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				v.Set(k.Name, sv.GetSlice())
			} else {
				v.Set(k.Name, f.Value.String())
			}
			source[k.Name] = "flag --" + k.Flag
		}
	}

	var c Config
	rv := reflect.ValueOf(&c).Elem()
	for _, k := range keys {
		f := fields[k.Name]
		dst := rv.FieldByIndex(f.index)
		// Start from the default, so that a value that fails to convert is
		// reported once, not again by Validate as a missing value.
		if k.Default != nil {
			dst.Set(reflect.ValueOf(k.Default))
		}
		raw := v.Get(k.Name)
		if raw == nil {
			continue
		}
		val, err := convert(raw, f.typ, k.Secret)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (from %s): %w", k.Name, source[k.Name], err))
			continue
		}
		dst.Set(val)
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		// The configuration comes back too, as far as it could be read, so that
		// `doctor` can go on checking the pieces that do work.
		return &c, errors.Join(errs...)
	}
	return &c, nil
}

// parseEnviron mirrors os.Getenv: the first of duplicate entries wins.
func parseEnviron(environ []string) map[string]string {
	env := make(map[string]string)
	for _, kv := range environ {
		k, val, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(k, envPrefix) {
			continue
		}
		if _, dup := env[k]; !dup {
			env[k] = val
		}
	}
	return env
}

// configPath picks the file and whether it must exist: a file the user
// named and that is missing is a mistake worth stopping for, while the
// default file is merely a convenience.
func configPath(fs *pflag.FlagSet, env map[string]string) (path string, required bool) {
	if fs != nil {
		if f := fs.Lookup(configFlag); f != nil && f.Changed {
			return f.Value.String(), true
		}
	}
	if p := env[configEnv]; p != "" {
		return p, true
	}
	return defaultFile, false
}

// readFile parses the YAML file into key -> raw value; with unknown keys it
// returns both the recognised values and an error. It does its own walk,
// rather than letting viper swallow the file, for two reasons: unknown keys
// must be errors (a typo such as dialog.max_active would otherwise silently
// leave the default in place), and a section whose keys are all commented
// out parses as null, which in viper would shadow that section's defaults.
func readFile(path string, required bool) (map[string]any, error) {
	if path == "" {
		return nil, errors.New("config file: empty path")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !required && errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if doc == nil { // empty, or only comments
		return nil, nil
	}
	top, ok := asMap(doc)
	if !ok {
		return nil, fmt.Errorf("config file %s: the top level must be a mapping of sections (http:, bitrix:, ...)", path)
	}
	values := make(map[string]any)
	var errs []error
	walkFile(top, "", values, &errs)
	if len(errs) > 0 {
		for i, err := range errs {
			errs[i] = fmt.Errorf("config file %s: %w", path, err)
		}
		return values, errors.Join(errs...)
	}
	return values, nil
}

func walkFile(m map[string]any, prefix string, out map[string]any, errs *[]error) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		val := m[k]
		name := strings.ToLower(k)
		if prefix != "" {
			name = prefix + "." + name
		}
		if _, ok := lookupKey(name); ok {
			if val != nil { // "key:" with no value means "not set"
				out[name] = val
			}
			continue
		}
		sub, isMap := asMap(val)
		switch {
		case isSection(name) && isMap:
			walkFile(sub, name, out, errs)
		case isSection(name) && val == nil:
			// A section with every key commented out.
		case isSection(name):
			*errs = append(*errs, fmt.Errorf("%s must be a mapping of keys, not a single value", name))
		case isMap && len(sub) > 0:
			// Name the leaves, which is what the user typed.
			walkFile(sub, name, out, errs)
		default:
			*errs = append(*errs, unknownKey(name))
		}
	}
}

func unknownKey(name string) error {
	best, bestD := "", 4 // suggest only close matches
	for _, k := range keys {
		if d := editDistance(name, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	if best != "" {
		return fmt.Errorf("unknown key %s (did you mean %s?)", name, best)
	}
	return fmt.Errorf("unknown key %s", name)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, val := range m {
			out[fmt.Sprint(k)] = val
		}
		return out, true
	}
	return nil, false
}

// nest turns {"bitrix.burst": 5} into {"bitrix": {"burst": 5}}, the shape
// viper's config layer expects.
func nest(flat map[string]any) map[string]any {
	out := make(map[string]any)
	for name, val := range flat {
		sec, key, _ := strings.Cut(name, ".")
		m, ok := out[sec].(map[string]any)
		if !ok {
			m = make(map[string]any)
			out[sec] = m
		}
		m[key] = val
	}
	return out
}

// convert turns a raw value — a string from the environment or a flag, a
// []string from a slice flag, or whatever YAML produced — into the field's
// type. Doing it here, instead of through mapstructure decode hooks, gives
// one set of rules for all three sources and errors that say what was wrong.
// Secret values are never echoed.
func convert(raw any, t reflect.Type, secret bool) (reflect.Value, error) {
	show := func(v any) string {
		if secret {
			return "the value"
		}
		if s, ok := v.(string); ok {
			return strconv.Quote(s)
		}
		return fmt.Sprint(v)
	}
	switch t.Kind() {
	case reflect.String:
		s, err := toString(raw)
		return reflect.ValueOf(s), err
	case reflect.Int:
		n, err := toInt64(raw, show)
		if err == nil && (n < math.MinInt || n > math.MaxInt) {
			err = fmt.Errorf("%s is out of range", show(raw))
		}
		return reflect.ValueOf(int(n)), err
	case reflect.Int64:
		n, err := toInt64(raw, show)
		return reflect.ValueOf(n), err
	case reflect.Float64:
		f, err := toFloat64(raw, show)
		return reflect.ValueOf(f), err
	case reflect.Slice:
		ids, err := toInt64List(raw, show)
		return reflect.ValueOf(ids), err
	}
	return reflect.Value{}, fmt.Errorf("unsupported field type %s", t)
}

func toString(raw any) (string, error) {
	switch v := raw.(type) {
	case string:
		return v, nil
	case int, int64, uint64, bool:
		// YAML reads `client_id: 12345` as a number; it is still meant as text.
		return fmt.Sprint(v), nil
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("expected a single value, got %s", describe(raw))
}

func toInt64(raw any, show func(any) string) (int64, error) {
	switch v := raw.(type) {
	case int:
		return int64(v), nil
	case int64:
		return v, nil
	case uint64:
		if v > math.MaxInt64 {
			return 0, fmt.Errorf("%s is out of range", show(raw))
		}
		return int64(v), nil
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, fmt.Errorf("%s is not an integer", show(raw))
		}
		return int64(v), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not an integer", show(raw))
		}
		return n, nil
	}
	return 0, fmt.Errorf("expected an integer, got %s", describe(raw))
}

func toFloat64(raw any, show func(any) string) (float64, error) {
	switch v := raw.(type) {
	case int:
		return float64(v), nil
	case int64:
		return float64(v), nil
	case uint64:
		return float64(v), nil
	case float64:
		return v, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%s is not a number", show(raw))
		}
		return f, nil
	}
	return 0, fmt.Errorf("expected a number, got %s", describe(raw))
}

// toInt64List accepts a comma-separated string (environment, or a YAML
// string "7,8"), a YAML list, or the []string of a repeated slice flag. An
// empty string is an empty list, so a flag can clear a list set elsewhere;
// an empty entry ("7,,8") is an error, as it is most likely a typo.
func toInt64List(raw any, show func(any) string) ([]int64, error) {
	var items []any
	switch v := raw.(type) {
	case string:
		if strings.TrimSpace(v) == "" {
			return []int64{}, nil
		}
		for _, s := range strings.Split(v, ",") {
			items = append(items, s)
		}
	case []string:
		for _, s := range v {
			for _, part := range strings.Split(s, ",") {
				items = append(items, part)
			}
		}
	case []any:
		items = v
	default:
		// A single YAML number: `agents: 7`.
		items = []any{raw}
	}
	ids := make([]int64, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok && strings.TrimSpace(s) == "" {
			return nil, fmt.Errorf("empty entry in list %s", show(raw))
		}
		n, err := toInt64(it, show)
		if err != nil {
			return nil, fmt.Errorf("list entry: %w", err)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

func describe(v any) string {
	switch v.(type) {
	case []any, []string:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}
