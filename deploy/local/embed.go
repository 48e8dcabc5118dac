// Package local embeds deploy/local/guardian.yaml, the configuration that
// `guardian serve` uses when no --config is given.
package local

import _ "embed"

// Config is the embedded guardian.yaml.
//
//go:embed guardian.yaml
var Config []byte
