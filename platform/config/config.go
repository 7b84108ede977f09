// Package config reads a service's settings from command-line flags and
// PARLEY_* environment variables, flags winning over the environment and
// the environment over the flags' defaults. Every flag has a variable:
// flag "http-addr" is PARLEY_HTTP_ADDR.
package config

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// EnvPrefix starts the name of every variable Parse reads.
const EnvPrefix = "PARLEY_"

// EnvName returns the environment variable for a flag: "mongodb-uri" ->
// "PARLEY_MONGODB_URI".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Parse parses args into fs, then sets every flag not given in args from
// its environment variable. A variable that is set but empty counts as
// unset, so an empty line in an env file does not clear a default. A value
// the flag rejects is an error naming the variable.
func Parse(fs *flag.FlagSet, args []string) error {
	return parse(fs, args, os.LookupEnv)
}

func parse(fs *flag.FlagSet, args []string, lookup func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err // already says which flag, and usage was printed
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil || set[f.Name] {
			return
		}
		name := EnvName(f.Name)
		v, ok := lookup(name)
		if !ok || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%w: %s=%q: %w", ErrBadEnv, name, v, serr)
		}
	})
	return err
}
