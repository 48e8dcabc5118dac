package config

import (
	"fmt"
	"path/filepath"
)

// Policy configures the routing policy: OPA Rego deciding backend, model,
// priority and degradation per request.
type Policy struct {
	// Dir holds the .rego files (and their _test.rego tests), watched and
	// hot-reloaded. A relative path is relative to the directory of the
	// guardian.yaml that names it. Empty: the bundled policies embedded in
	// the binary (policy/rego in the repository).
	Dir string `yaml:"dir"`
	// LogSampleRate is the share (0..1) of decisions logged as one
	// "policy decision" line each. Default 0: none.
	LogSampleRate float64 `yaml:"log_sample_rate"`
}

func (p *Policy) resolveDir(base string) {
	if p.Dir != "" && !filepath.IsAbs(p.Dir) {
		p.Dir = filepath.Join(base, p.Dir)
	}
}

func (p *Policy) validate() error {
	if p.LogSampleRate < 0 || p.LogSampleRate > 1 {
		return fmt.Errorf("policy.log_sample_rate: %v is not between 0 and 1", p.LogSampleRate)
	}
	return nil
}
