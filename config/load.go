package config

import (
	"errors"
	"fmt"
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

// The default file is optional, so that a fresh checkout runs without one.
const (
	defaultFile = "supportbot.yaml"
	configFlag  = "config"
	configEnv   = "SUPPORTBOT_CONFIG"
)

// BindFlags registers --config and one flag per key, named like the key
// (--bitrix.webhook_url, --support.agents=1,2,3), once per FlagSet. Only set
// flags are read, so their own defaults are zero; the usage names Keys' own.
func BindFlags(fs *pflag.FlagSet) {
	fs.String(configFlag, "", "configuration file (default ./"+defaultFile+" if it exists; env "+configEnv+")")
	for _, k := range keys {
		usage := strings.ReplaceAll(k.Description, "`", "") + " (env " + k.Env // `x` would name pflag's placeholder
		if k.Default != nil {
			usage += ", default " + k.DefaultText()
		}
		usage += ")"
		switch t := fields[k.Name].Type; {
		case t.Kind() == reflect.String || t == reflect.TypeFor[time.Duration](): // "72h" is text to a flag
			fs.String(k.Flag, "", usage)
		case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
			fs.Int64(k.Flag, 0, usage)
		case t.Kind() == reflect.Float64:
			fs.Float64(k.Flag, 0, usage)
		default: // strings, not int64s: --access.admins= must be accepted, to clear a list
			fs.StringSlice(k.Flag, nil, usage+"; comma-separated, may be repeated")
		}
	}
}

// Load is LoadFrom with the process environment.
func Load(fs *pflag.FlagSet) (*Config, error) { return LoadFrom(fs, os.Environ()) }

// LoadFrom builds and validates the Config from, in rising precedence, the
// defaults in Keys, the file (--config, else SUPPORTBOT_CONFIG — either must
// exist — else ./supportbot.yaml if present), the SUPPORTBOT_* variables in
// environ (explicit, so that loads can run in parallel; empty ones count as
// unset) and the flags set in fs, which may be nil. It reports every problem,
// each naming its key and source, and returns the Config as far as it could
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
	path, required := defaultFile, false // a file the user named must exist
	if f := fs.Lookup(configFlag); f != nil && f.Changed {
		path, required = f.Value.String(), true
	} else if env[configEnv] != "" {
		path, required = env[configEnv], true
	}
	if path == "" {
		return nil, errors.New("config file: empty path")
	}
	v := viper.NewWithOptions(viper.WithDecodeHook(decodeHook)) // one per load: loads run in parallel
	v.SetConfigFile(path)
	v.SetConfigType("yaml") // whatever the file is called
	if err := v.ReadInConfig(); err != nil && (required || !errors.Is(err, os.ErrNotExist)) {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	var errs []error
	for _, name := range slices.Sorted(slices.Values(v.AllKeys())) { // the file's keys, so far
		switch {
		case isSection(name) && v.Get(name) != nil: // null if its keys are all commented out
			errs = append(errs, fmt.Errorf("config file %s: %s must be a mapping of keys, not a single value", path, name))
			_ = v.MergeConfigMap(map[string]any{name: map[string]any{}}) // or it would hide their defaults
		case !isSection(name) && !slices.ContainsFunc(keys, func(k Key) bool { return strings.HasPrefix(name+".", k.Name+".") }):
			errs = append(errs, fmt.Errorf("config file %s: %w", path, unknownKey(name))) // bitrix.burst.x is burst's problem
		}
	}
	var c Config
	for _, k := range keys {
		v.SetDefault(k.Name, k.Default)
		from := "file " + path
		if f := fs.Lookup(k.Flag); f != nil && f.Changed {
			_ = v.BindPFlag(k.Name, f) // fails only for a nil flag
			from = "flag --" + k.Flag
		} else if val := env[k.Env]; val != "" {
			v.Set(k.Name, val) // viper reads variables only from os.LookupEnv; flags rank below Set
			from = "env " + k.Env
		}
		// Key by key, each whole or not at all: half a list would be worse.
		field := reflect.ValueOf(&c).Elem().FieldByIndex(fields[k.Name].Index)
		val := reflect.New(field.Type())
		err := v.UnmarshalKey(k.Name, val.Interface())
		if err == nil {
			field.Set(val.Elem())
			continue
		}
		if k.Default != nil { // reported here, so not again by Validate
			field.Set(reflect.ValueOf(k.Default))
		}
		if de := (*mapstructure.DecodeError)(nil); errors.As(err, &de) { // the first, without a summary
			err = de.Unwrap()
		}
		errs = append(errs, fmt.Errorf("%s (from %s): %w", k.Name, from, err))
	}
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return &c, errors.Join(errs...)
}

// decodeHook is viper's default ("72h" → a duration, "7,8" → a list) after
// tidy. Viper decodes weakly typed: "5" → 5, 50.0 → 50, 7 → [7], 12345 → "12345".
var decodeHook = mapstructure.ComposeDecodeHookFunc(tidy,
	mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToWeakSliceHookFunc(","))

// tidy does what weak typing does not, through the value's trimmed text: 2.5
// and true are no integers, "010" is 10, "0x10" none, a bare 72 no duration.
// Only values meant as numbers are echoed: secrets are strings, left alone.
func tidy(_, to reflect.Type, data any) (any, error) {
	switch data.(type) {
	case string, bool, int, uint64, float64: // YAML's scalars
	default:
		return data, nil
	}
	text := strings.TrimSpace(fmt.Sprint(data))
	switch kind := to.Kind(); {
	case kind == reflect.String:
		return fmt.Sprint(data), nil // 12345 → "12345"
	case to == reflect.TypeFor[time.Duration]():
		if _, ok := data.(string); !ok {
			return nil, fmt.Errorf(`%v is not a duration such as "72h"`, data)
		}
	case kind == reflect.Int || kind == reflect.Int64: // parsed here, as weak typing reads "010" as 8
		n, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", text)
		}
		return n, nil
	case kind == reflect.Float64:
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return nil, fmt.Errorf("%q is not a number", text)
		}
	}
	return text, nil
}

func unknownKey(name string) error {
	best := slices.MinFunc(keys, func(a, b Key) int { return editDistance(name, a.Name) - editDistance(name, b.Name) })
	if editDistance(name, best.Name) > 3 { // suggest only close matches
		return fmt.Errorf("unknown key %s", name)
	}
	return fmt.Errorf("unknown key %s (did you mean %s?)", name, best.Name)
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
