package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/joho/godotenv"
	"github.com/spf13/viper"
)

// EnvPrefix starts the environment name of every key: http.port is ORCH_HTTP_PORT.
const EnvPrefix = "ORCH_"

// DefaultFile is read from the working directory when no file is named.
const DefaultFile = "config.yaml"

// aliases are the unprefixed names the service we replace understood; they stay valid.
var aliases = map[string][]string{
	"app.env":                       {"ORCH_ENV"},
	"http.port":                     {"PORT"},
	"database.url":                  {"DATABASE_URL"},
	"redis.url":                     {"REDIS_URL"},
	"clerk.secret_key":              {"CLERK_SECRET_KEY"},
	"clerk.jwt_key":                 {"CLERK_JWT_KEY"},
	"clerk.api_url":                 {"CLERK_API_URL"},
	"clerk.webhook_secret":          {"CLERK_WEBHOOK_SECRET"},
	"auth.jwt_secret":               {"JWT_SECRET"},
	"runtime.docker_host":           {"DOCKER_HOST"},
	"runtime.kubernetes.kubeconfig": {"KUBECONFIG"},
}

// Options says where configuration comes from. The zero value reads config.yaml and .env from the
// working directory and the process environment.
type Options struct {
	File      string                      // explicit config file; empty = CONFIG_FILE or ./config.yaml if present
	DotEnv    string                      // .env path; empty = ./.env if present
	LookupEnv func(string) (string, bool) // nil = os.LookupEnv
}

// Load builds the configuration with precedence defaults < file < .env < environment and validates it.
func Load(opts Options) (*Config, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v := viper.New()
	defaults := Default()
	keys := Keys()
	for key, value := range flatten(reflect.ValueOf(defaults), "") {
		v.SetDefault(key, value)
	}

	explicit, err := readFile(v, opts.File, lookup)
	if err != nil {
		return nil, err
	}

	dotenv, err := readDotEnv(opts.DotEnv)
	if err != nil {
		return nil, err
	}
	sources := []func(string) (string, bool){lookup, func(name string) (string, bool) {
		value, ok := dotenv[name]
		return value, ok
	}}
	for _, key := range keys {
		if value, ok := envValue(key, sources); ok {
			v.Set(key, value)
			explicit[key] = true
		}
	}

	var cfg Config
	if err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) { dc.ErrorUnused = false }); err != nil {
		return nil, decodeError(err)
	}
	if cfg.App.Development() && !explicit["http.drain_delay"] {
		cfg.HTTP.DrainDelay = 0 // no load balancer to drain in development: stop at once
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// EnvNames lists the environment names that set key, most specific first.
func EnvNames(key string) []string {
	names := []string{EnvPrefix + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))}
	return append(names, aliases[key]...)
}

// Keys lists every configuration key in dotted form, sorted.
func Keys() []string {
	flat := flatten(reflect.ValueOf(Default()), "")
	keys := make([]string, 0, len(flat))
	for key := range flat {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys
}

// envValue applies real environment before .env, and within one source the prefixed name first.
func envValue(key string, sources []func(string) (string, bool)) (string, bool) {
	for _, source := range sources {
		for _, name := range EnvNames(key) {
			if value, ok := source(name); ok {
				return value, true
			}
		}
	}
	return "", false
}

// readFile merges the config file into v and returns the keys it set.
func readFile(v *viper.Viper, named string, lookup func(string) (string, bool)) (map[string]bool, error) {
	set := map[string]bool{}
	path := named
	if path == "" {
		path, _ = lookup("CONFIG_FILE")
	}
	if path == "" {
		if _, err := os.Stat(DefaultFile); err != nil {
			return set, nil
		}
		path = DefaultFile
	}
	file := viper.New()
	file.SetConfigFile(path)
	file.SetConfigType(strings.TrimPrefix(filepath.Ext(path), "."))
	if err := file.ReadInConfig(); err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, key := range Keys() {
		known[key] = true
	}
	for _, key := range file.AllKeys() {
		if !known[key] {
			return nil, invalid(key, "unknown key in %s", path)
		}
		set[key] = true
	}
	return set, v.MergeConfigMap(file.AllSettings())
}

func readDotEnv(path string) (map[string]string, error) {
	if path == "" {
		if _, err := os.Stat(".env"); err != nil {
			return nil, nil
		}
		path = ".env"
	}
	values, err := godotenv.Read(path)
	if err != nil {
		return nil, fmt.Errorf("config: reading %s: %w", path, err)
	}
	return values, nil
}

// decodeError turns mapstructure's multi-line report into one line naming the first bad key.
func decodeError(err error) error {
	var de *mapstructure.DecodeError
	if errors.As(err, &de) {
		return invalid(de.Name(), "%v", de.Unwrap())
	}
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	return fmt.Errorf("config: %s", msg)
}

// flatten maps every leaf of a mapstructure-tagged struct to its dotted key.
func flatten(v reflect.Value, prefix string) map[string]any {
	out := map[string]any{}
	t := v.Type()
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("mapstructure")
		if name == "" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		field := v.Field(i)
		if field.Kind() == reflect.Struct {
			for k, val := range flatten(field, key) {
				out[k] = val
			}
			continue
		}
		out[key] = field.Interface()
	}
	return out
}
