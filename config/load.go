package config

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// defaultFile is read from the working directory when no other file is
// named; it is optional so that a fresh checkout runs with no file at all.
// configEnv is for containers, where a variable is easier to add than a flag.
const (
	defaultFile = "supportbot.yaml"
	configFlag  = "config"
	configEnv   = envPrefix + "CONFIG"
)

// BindFlags registers --config and one flag per key, named exactly like the
// key (--bitrix.webhook_url, --support.agents=1,2,3), so that the README
// table, the environment and the command line share one vocabulary. Call it
// once per FlagSet; pflag panics on a redefined flag.
//
// Viper reads a bound flag the user did not set only after all other layers,
// defaults included, so a flag's own default could never hide the file or
// the environment. They are zero all the same: the defaults live in Keys
// alone, where loads without a FlagSet find them too, and the usage names them.
func BindFlags(fs *pflag.FlagSet) {
	fs.String(configFlag, "", "configuration file (default ./"+defaultFile+" if it exists; env "+configEnv+")")
	for _, k := range keys {
		// Descriptions are Markdown for the README; pflag would take the
		// first `quoted` word as the value's placeholder name.
		usage := strings.ReplaceAll(k.Description, "`", "") + " (env " + k.Env
		if k.Default != nil {
			usage += fmt.Sprintf(", default %#v", k.Default)
		}
		switch usage += ")"; fields[k.Name].Type.Kind() {
		case reflect.String:
			fs.String(k.Flag, "", usage)
		case reflect.Int:
			fs.Int(k.Flag, 0, usage)
		case reflect.Int64:
			fs.Int64(k.Flag, 0, usage)
		case reflect.Float64:
			fs.Float64(k.Flag, 0, usage)
		default: // strings, not int64s: --access.admins= must be accepted, to clear a list
			fs.StringSlice(k.Flag, nil, usage+"; comma-separated, may be repeated")
		}
	}
}

// Load is LoadFrom with the process environment.
func Load(fs *pflag.FlagSet) (*Config, error) { return LoadFrom(fs, os.Environ()) }

// LoadFrom builds the Config from, in rising precedence, the defaults in
// Keys, the file (--config, else SUPPORTBOT_CONFIG — either must exist —
// else ./supportbot.yaml if present), the SUPPORTBOT_* variables in environ
// and the flags in fs (which may be nil); then it validates the result.
//
// environ is explicit, and each load has vipers of its own, so that tests run
// loads in parallel without touching the process environment. Viper v1.21
// reads variables only through os.LookupEnv (BindEnv, AutomaticEnv), so
// environ goes into the override layer of the viper that reads the file, and
// the two become the config layer of the viper that decodes: above its
// defaults, below its bound flags, where its env layer would be. As in viper,
// an empty variable counts as unset; an empty flag value does override.
//
// Every problem is reported at once, each naming its key and its source, so
// one edit can fix them all. The Config comes back too, as far as it could
// be read, so that `doctor` can go on; only an unreadable file leaves none.
func LoadFrom(fs *pflag.FlagSet, environ []string) (*Config, error) {
	if fs == nil {
		fs = pflag.NewFlagSet("none", pflag.ContinueOnError)
	}
	env := make(map[string]string)
	for _, kv := range slices.Backward(environ) { // the first duplicate wins, as in os.Getenv
		if name, val, ok := strings.Cut(kv, "="); ok {
			env[name] = val
		}
	}
	// A file the user named is required; the default one is a convenience.
	path, required := defaultFile, false
	if f := fs.Lookup(configFlag); f != nil && f.Changed {
		path, required = f.Value.String(), true
	} else if env[configEnv] != "" {
		path, required = env[configEnv], true
	}
	lower, err := readFile(path, required) // the file, and environ over it
	if err != nil {
		return nil, err
	}
	v := viper.New()
	for _, k := range keys {
		if k.Default != nil {
			v.SetDefault(k.Name, k.Default)
		}
		if val := env[k.Env]; val != "" {
			lower.Set(k.Name, val)
		}
	}
	// Start from the defaults, so that a value that fails to convert keeps
	// its default and is reported once, not again by Validate.
	var c Config
	_ = v.Unmarshal(&c)

	// AllSettings leaves out nulls: a section whose keys are all commented
	// out sets nothing, where in viper's config layer it would hide the
	// section's defaults and flags.
	var errs []error
	settings := lower.AllSettings()
	for _, sec := range slices.Sorted(maps.Keys(settings)) {
		if _, ok := settings[sec].(map[string]any); !ok && isSection(sec) {
			errs = append(errs, fmt.Errorf("config file %s: %s must be a mapping of keys, not a single value", path, sec))
			delete(settings, sec)
		}
	}
	_ = v.MergeConfigMap(settings) // never fails
	for _, k := range keys {
		if f := fs.Lookup(k.Flag); f != nil {
			_ = v.BindPFlag(k.Name, f) // fails only for a nil flag
		}
	}

	err = v.UnmarshalExact(&c, viper.DecodeHook(decodeHook))
	var joined interface{ Unwrap() []error } // mapstructure puts a summary line on top
	if errors.As(err, &joined) {
		err = joined.(error)
	}
	fileKeys := lower.AllKeys()
	slices.Sort(fileKeys)
	for _, e := range leafErrors(err) {
		var de *mapstructure.DecodeError
		if !errors.As(e, &de) {
			errs = append(errs, e)
			continue
		}
		name := de.Name()
		// UnmarshalExact names the keys that no field took, per section: typos
		// such as dialog.max_active, which would otherwise leave the default.
		unused, ok := strings.CutPrefix(de.Unwrap().Error(), "has invalid keys: ")
		if !ok {
			from := "file " + path
			if f := fs.Lookup(name); f != nil && f.Changed {
				from = "flag --" + name
			} else if ev := envName(name); env[ev] != "" {
				from = "env " + ev
			}
			errs = append(errs, fmt.Errorf("%s (from %s): %w", name, from, de.Unwrap()))
			continue
		}
		for _, u := range strings.Split(unused, ", ") {
			u = strings.TrimPrefix(name+"."+u, ".")
			for _, leaf := range fileKeys { // named as the user typed them
				if leaf == u || strings.HasPrefix(leaf, u+".") {
					errs = append(errs, fmt.Errorf("config file %s: %w", path, unknownKey(leaf)))
				}
			}
		}
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return &c, errors.Join(errs...)
}

// readFile reads the YAML file into a viper of its own; a missing file that
// is not required reads as empty.
func readFile(path string, required bool) (*viper.Viper, error) {
	if path == "" {
		return nil, errors.New("config file: empty path")
	}
	file := viper.New()
	file.SetConfigFile(path)
	file.SetConfigType("yaml") // whatever the file is called
	err := file.ReadInConfig()
	var pathErr *os.PathError
	switch {
	case err == nil, !required && errors.Is(err, os.ErrNotExist):
		return file, nil
	case errors.As(err, &pathErr): // which names the file already
		return nil, fmt.Errorf("config file: %w", err)
	}
	return nil, fmt.Errorf("config file %s: %w", path, err)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	idsType      = reflect.TypeFor[[]int64]()
)

// decodeHook turns what the sources give — strings from the environment and
// flags, the []string of a slice flag, whatever YAML made of the file — into
// the field's type, with errors that say what was wrong. Only values meant as
// numbers or durations are echoed: the secrets are strings.
func decodeHook(_, to reflect.Type, data any) (any, error) {
	switch to.Kind() {
	case reflect.String, reflect.Int, reflect.Int64, reflect.Float64:
		return toScalar(data, to)
	}
	if to == idsType {
		return toIDs(data)
	}
	return data, nil
}

// toScalar goes through the value's text, which is how YAML's
// `client_id: 12345` becomes a string and `burst: 50.0` an integer.
func toScalar(data any, to reflect.Type) (any, error) {
	switch reflect.ValueOf(data).Kind() {
	case reflect.Slice:
		return nil, errors.New("expected a single value, got a list")
	case reflect.Map:
		return nil, errors.New("expected a single value, got a mapping")
	}
	s := strings.TrimSpace(fmt.Sprint(data))
	switch {
	case to.Kind() == reflect.String:
		return fmt.Sprint(data), nil
	case to == durationType: // "72h"; a bare 72 has no unit and is refused
		d, err := time.ParseDuration(s)
		return d, notA(err, data, `a duration such as "72h"`)
	case to.Kind() == reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		return f, notA(err, data, "a number")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return nil, fmt.Errorf("%s is out of range", s)
	}
	return n, notA(err, data, "an integer")
}

// toIDs accepts a comma-separated string (the environment, or a YAML string
// "7,8"), a YAML list, a single YAML number, or the []string of a repeated
// slice flag. The list is converted whole, so that one bad entry leaves the
// default in place rather than a zero for Validate to report again. A blank
// string is no list, so that --access.admins= clears a list set elsewhere
// and an unset slice flag, which viper reports as empty, changes nothing; an
// empty entry ("7,,8") is most likely a typo.
func toIDs(data any) (any, error) {
	if ss, ok := data.([]string); ok {
		data = strings.Join(ss, ",")
	}
	var entries []any
	switch d := data.(type) {
	case string:
		if strings.TrimSpace(d) == "" {
			return nil, nil
		}
		for e := range strings.SplitSeq(d, ",") {
			if strings.TrimSpace(e) == "" {
				return nil, fmt.Errorf("empty entry in list %q", d)
			}
			entries = append(entries, e)
		}
	case []any:
		entries = d
	default:
		entries = []any{d}
	}
	var ids []int64
	for _, e := range entries {
		id, err := toScalar(e, idsType.Elem())
		if err != nil {
			return nil, err
		}
		ids = append(ids, id.(int64))
	}
	return ids, nil
}

func notA(err error, data any, what string) error {
	if err == nil {
		return nil
	}
	if s, ok := data.(string); ok {
		return fmt.Errorf("%q is not %s", s, what)
	}
	return fmt.Errorf("%v is not %s", data, what)
}

func unknownKey(name string) error {
	best, bestD := "", 4 // suggest only close matches
	for _, k := range keys {
		if d := editDistance(name, k.Name); d < bestD {
			best, bestD = k.Name, d
		}
	}
	if best == "" {
		return fmt.Errorf("unknown key %s", name)
	}
	return fmt.Errorf("unknown key %s (did you mean %s?)", name, best)
}

// editDistance is Levenshtein's, computed one row at a time.
func editDistance(a, b string) int {
	row := make([]int, len(b)+1)
	for j := range row {
		row[j] = j
	}
	for i := range len(a) {
		diag := row[0]
		row[0] = i + 1
		for j := range len(b) {
			cost := 1
			if a[i] == b[j] {
				cost = 0
			}
			diag, row[j+1] = row[j+1], min(row[j+1]+1, row[j]+1, diag+cost)
		}
	}
	return row[len(b)]
}
