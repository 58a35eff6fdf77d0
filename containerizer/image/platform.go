package image

import (
	"fmt"
	"runtime"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
)

// parsePlatform parses "os/arch[/variant]"; empty means this host's.
func parsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return v1.Platform{}, fmt.Errorf("platform %q is not os/arch[/variant]: %w", s, api.ErrInvalid)
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// platformString formats a platform as os/arch[/variant].
func platformString(p *v1.Platform) string {
	if p == nil {
		return "unknown"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// platformMatches reports whether have runs on want. The variant is
// compared only when both name one; arm64's default variant is v8.
func platformMatches(want, have v1.Platform) bool {
	if want.OS != have.OS || want.Architecture != have.Architecture {
		return false
	}
	wv, hv := normVariant(want), normVariant(have)
	return wv == "" || hv == "" || wv == hv
}

func normVariant(p v1.Platform) string {
	if p.Architecture == "arm64" && p.Variant == "v8" {
		return ""
	}
	return p.Variant
}

// selectManifest picks the manifest of an index or manifest list that runs
// on want. Among several matches, one whose variant is equal to the wanted
// one is preferred, then the first. With no match, the error wraps
// api.ErrNotFound and lists the platforms the index offers.
func selectManifest(im *v1.IndexManifest, want v1.Platform, ref string) (v1.Descriptor, error) {
	var (
		found     []v1.Descriptor
		available []string
	)
	for _, d := range im.Manifests {
		if !d.MediaType.IsImage() && !d.MediaType.IsIndex() {
			continue
		}
		if d.Platform == nil {
			continue
		}
		// Attestation manifests use "unknown/unknown"; they are not images.
		if d.Platform.OS == "unknown" {
			continue
		}
		available = append(available, platformString(d.Platform))
		if d.MediaType.IsImage() && platformMatches(want, *d.Platform) {
			found = append(found, d)
		}
	}
	for _, d := range found {
		if normVariant(*d.Platform) == normVariant(want) {
			return d, nil
		}
	}
	if len(found) > 0 {
		return found[0], nil
	}
	slices.Sort(available)
	available = slices.Compact(available)
	if len(available) == 0 {
		available = []string{"none"}
	}
	return v1.Descriptor{}, fmt.Errorf("image %s has no manifest for platform %s (available: %s): %w",
		ref, platformString(&want), strings.Join(available, ", "), api.ErrNotFound)
}

// checkConfigPlatform refuses an image whose configuration names another
// platform than want. A config that names none is accepted.
func checkConfigPlatform(cfg *v1.ConfigFile, want v1.Platform, ref string) error {
	if cfg.OS == "" && cfg.Architecture == "" {
		return nil
	}
	have := v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if have.OS == "" {
		have.OS = want.OS
	}
	if have.Architecture == "" {
		have.Architecture = want.Architecture
	}
	if !platformMatches(want, have) {
		return fmt.Errorf("image %s is for platform %s, not %s: %w",
			ref, platformString(&have), platformString(&want), api.ErrNotFound)
	}
	return nil
}
