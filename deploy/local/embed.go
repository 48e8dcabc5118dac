// Package local embeds deploy/local/guardian.yaml, the configuration that
// `guardian serve` uses when no --config is given, and the example
// rate-limit rules it names (deploy/local/ratelimit).
package local

import (
	"embed"
	"io/fs"
)

// Config is the embedded guardian.yaml.
//
//go:embed guardian.yaml
var Config []byte

//go:embed ratelimit/*.yaml
var ratelimitFS embed.FS

// RatelimitDir is the config_dir that guardian.yaml names, relative to it.
const RatelimitDir = "ratelimit"

// Ratelimit returns the embedded deploy/local/ratelimit directory, used
// when the embedded guardian.yaml runs away from a checkout.
func Ratelimit() fs.FS {
	sub, err := fs.Sub(ratelimitFS, RatelimitDir)
	if err != nil { // cannot happen: the directory is embedded
		return ratelimitFS
	}
	return sub
}
