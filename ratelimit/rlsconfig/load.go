package rlsconfig

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is one config file's name and content.
type File struct {
	Name string
	Data []byte
}

// ErrNoFiles is returned by ReadDir for a directory without config files.
var ErrNoFiles = errors.New("rlsconfig: no .yaml or .yml files")

// ReadDir reads the config files of dir: its *.yaml and *.yml entries
// (symlinks followed), in name order. Names starting with '.' are skipped,
// so a Kubernetes ConfigMap volume (files linked through "..data") is read
// once, through its visible links.
func ReadDir(dir string) ([]File, error) {
	return ReadFS(os.DirFS(dir), ".")
}

// ReadFS is ReadDir on a file system (e.g. an embed.FS).
func ReadFS(fsys fs.FS, dir string) ([]File, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("rlsconfig: %w", err)
	}
	var files []File
	for _, e := range ents {
		name := e.Name()
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		p := name
		if dir != "." {
			p = dir + "/" + name
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) && isDir(fsys, p) {
				continue
			}
			return nil, fmt.Errorf("rlsconfig: %w", err)
		}
		files = append(files, File{Name: name, Data: data})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w in %s", ErrNoFiles, dir)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
	return files, nil
}

func isDir(fsys fs.FS, p string) bool {
	st, err := fs.Stat(fsys, p)
	return err == nil && st.IsDir()
}

// LoadDir reads and parses the config files of dir.
func LoadDir(dir string) (*Config, error) {
	files, err := ReadDir(dir)
	if err != nil {
		return nil, err
	}
	return Parse(files)
}

// Parse builds a Config from files. Two files may not name the same domain.
func Parse(files []File) (*Config, error) {
	c := &Config{domains: map[string]*node{}}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.Name, len(f.Data))
		h.Write(f.Data)
		if err := c.load(f); err != nil {
			return nil, err
		}
		c.Files = append(c.Files, f.Name)
	}
	h.Sum(c.Hash[:0])
	return c, nil
}

func (c *Config) load(f File) error {
	d := &decoder{file: f.Name}
	var doc yaml.Node
	if err := yaml.Unmarshal(f.Data, &doc); err != nil {
		return &fileError{file: f.Name, msg: "error loading config file: " + err.Error()}
	}
	domain, descs, err := d.root(&doc)
	if err != nil {
		return err
	}
	if _, dup := c.domains[domain]; dup {
		return d.errf(nil, "duplicate domain '%s' in config file", domain)
	}
	root := &node{children: map[string]*node{}}
	if err := d.build(root, domain, domain+".", descs); err != nil {
		return err
	}
	c.domains[domain] = root
	return nil
}

// build adds descs under parent; prefix is the stats key so far.
func (d *decoder) build(parent *node, domain, prefix string, descs []yamlDescriptor) error {
	for i := range descs {
		yd := &descs[i]
		if yd.key == "" {
			return d.errf(yd.node, "descriptor has empty key")
		}
		final := yd.key
		if yd.value != "" {
			final += "_" + yd.value
		}
		key := prefix + final
		if _, dup := parent.children[final]; dup {
			return d.errf(yd.node, "duplicate descriptor composite key '%s'", key)
		}
		wild := strings.Contains(final, "*")
		if yd.shareThr && !wild {
			return d.errf(yd.node, "share_threshold can only be used with wildcard values (containing '*'), but found key '%s'", final)
		}
		n := &node{children: map[string]*node{}, valueToMetric: yd.v2m}
		if yd.shareThr {
			n.shareThreshold, n.sharePattern = true, strings.TrimPrefix(final, yd.key+"_")
		}
		if yd.limit != nil {
			r, err := d.rule(yd.limit, yd, domain, key)
			if err != nil {
				return err
			}
			n.rule = r
		}
		if wild {
			parent.wild = append(parent.wild, wildEntry{key: final, parts: splitStar(final)})
		}
		if err := d.build(n, domain, key+".", yd.children); err != nil {
			return err
		}
		parent.children[final] = n
	}
	return nil
}
