package image

import (
	"errors"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/caisson/caisson/api"
)

func TestParseReference(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	rel, err := filepath.Abs("relative/layout")
	if err != nil {
		t.Fatal(err)
	}
	type parsed struct {
		Kind      refKind
		Path      string
		Selector  string
		Canonical string
		Scheme    string // registries only
	}
	tests := []struct {
		ref     string
		want    parsed
		wantErr error
	}{
		{ref: "oci:/images/busybox", want: parsed{Kind: kindOCI, Path: "/images/busybox", Canonical: "oci:/images/busybox"}},
		{ref: "oci:/images/busybox:1.36", want: parsed{Kind: kindOCI, Path: "/images/busybox", Selector: "1.36", Canonical: "oci:/images/busybox:1.36"}},
		{ref: "oci:/images/busybox:" + digest, want: parsed{Kind: kindOCI, Path: "/images/busybox", Selector: digest, Canonical: "oci:/images/busybox:" + digest}},
		{ref: "oci:relative/layout", want: parsed{Kind: kindOCI, Path: rel, Canonical: "oci:" + rel}},
		{ref: "oci:/images//busybox/", want: parsed{Kind: kindOCI, Path: "/images/busybox", Canonical: "oci:/images/busybox"}},
		{ref: "oci:", wantErr: api.ErrInvalid},
		{ref: "oci:/images/busybox:", wantErr: api.ErrInvalid},
		{ref: "oci:/images/busybox:sha256:abc", wantErr: api.ErrInvalid},
		{ref: "oci:/images/busybox:a/b", wantErr: api.ErrInvalid},
		{ref: "docker-archive:/tmp/busybox.tar", want: parsed{Kind: kindDockerArchive, Path: "/tmp/busybox.tar", Canonical: "docker-archive:/tmp/busybox.tar"}},
		{ref: "docker-archive:/tmp/busybox.tar:busybox:1.36", want: parsed{Kind: kindDockerArchive, Path: "/tmp/busybox.tar", Selector: "busybox:1.36", Canonical: "docker-archive:/tmp/busybox.tar:busybox:1.36"}},
		{ref: "docker-archive:/tmp/x.tar:localhost:5000/app:v1", want: parsed{Kind: kindDockerArchive, Path: "/tmp/x.tar", Selector: "localhost:5000/app:v1", Canonical: "docker-archive:/tmp/x.tar:localhost:5000/app:v1"}},
		{ref: "docker-archive:/tmp/x.tar:Bad Name", wantErr: api.ErrInvalid},
		{ref: "docker-archive:", wantErr: api.ErrInvalid},
		{ref: "busybox", want: parsed{Kind: kindRegistry, Canonical: "index.docker.io/library/busybox:latest", Scheme: "https"}},
		{ref: "docker://busybox:1.36", want: parsed{Kind: kindRegistry, Canonical: "index.docker.io/library/busybox:1.36", Scheme: "https"}},
		{ref: "quay.io/org/app@" + digest, want: parsed{Kind: kindRegistry, Canonical: "quay.io/org/app@" + digest, Scheme: "https"}},
		{ref: "127.0.0.1:5000/app:v1", want: parsed{Kind: kindRegistry, Canonical: "127.0.0.1:5000/app:v1", Scheme: "http"}},
		{ref: "docker://localhost:5000/app", want: parsed{Kind: kindRegistry, Canonical: "localhost:5000/app:latest", Scheme: "http"}},
		{ref: "registry.internal:8080/app", want: parsed{Kind: kindRegistry, Canonical: "registry.internal:8080/app:latest", Scheme: "http"}},
		{ref: "registry.example.com/app", want: parsed{Kind: kindRegistry, Canonical: "registry.example.com/app:latest", Scheme: "https"}},
		{ref: "", wantErr: api.ErrInvalid},
		{ref: "Upper/Case", wantErr: api.ErrInvalid},
		{ref: "docker://", wantErr: api.ErrInvalid},
	}
	insecure := map[string]bool{"registry.internal:8080": true}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			r, err := parseReference(tt.ref, insecure)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("parseReference: got %v, want an error wrapping %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := parsed{Kind: r.kind, Path: r.path, Selector: r.selector, Canonical: r.String()}
			if r.named != nil {
				got.Scheme = r.named.Context().Scheme()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseReference(%q) (-want +got):\n%s", tt.ref, diff)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    v1.Platform
		wantErr error
	}{
		{in: "", want: v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}},
		{in: "linux/ppc64le", want: v1.Platform{OS: "linux", Architecture: "ppc64le"}},
		{in: "linux/arm/v7", want: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
		{in: "linux", wantErr: api.ErrInvalid},
		{in: "linux//v7", wantErr: api.ErrInvalid},
		{in: "linux/arm/v7/x", wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parsePlatform(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want an error wrapping %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSelectManifest(t *testing.T) {
	desc := func(n int, platform string) v1.Descriptor {
		d := v1.Descriptor{
			MediaType: types.OCIManifestSchema1,
			Digest:    v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(string(rune('0'+n)), 64)},
		}
		if platform != "" {
			p, err := v1.ParsePlatform(platform)
			if err != nil {
				t.Fatal(err)
			}
			d.Platform = p
		}
		return d
	}
	multi := &v1.IndexManifest{Manifests: []v1.Descriptor{
		desc(1, "linux/amd64"),
		desc(2, "linux/ppc64le"),
		desc(3, "linux/arm/v6"),
		desc(4, "linux/arm/v7"),
		desc(5, "linux/arm64/v8"),
		desc(6, "unknown/unknown"), // an attestation
		desc(7, ""),
	}}
	tests := []struct {
		want    string
		index   *v1.IndexManifest
		wantN   int
		wantErr error
	}{
		{want: "linux/amd64", index: multi, wantN: 1},
		{want: "linux/ppc64le", index: multi, wantN: 2},
		{want: "linux/arm/v7", index: multi, wantN: 4},
		{want: "linux/arm", index: multi, wantN: 3},
		{want: "linux/arm64", index: multi, wantN: 5},
		{want: "linux/arm64/v8", index: multi, wantN: 5},
		{want: "linux/s390x", index: multi, wantErr: api.ErrNotFound},
		{want: "windows/amd64", index: multi, wantErr: api.ErrNotFound},
		{want: "linux/arm/v5", index: multi, wantErr: api.ErrNotFound},
		{want: "linux/amd64", index: &v1.IndexManifest{}, wantErr: api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			want, err := parsePlatform(tt.want)
			if err != nil {
				t.Fatal(err)
			}
			got, err := selectManifest(tt.index, want, "example")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want an error wrapping %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(desc(tt.wantN, "").Digest, got.Digest); diff != "" {
				t.Errorf("picked %s (-want +got):\n%s", platformString(got.Platform), diff)
			}
		})
	}
}

func TestCheckConfigPlatform(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	tests := []struct {
		name    string
		cfg     v1.ConfigFile
		wantErr error
	}{
		{name: "same", cfg: v1.ConfigFile{OS: "linux", Architecture: "amd64"}},
		{name: "unnamed", cfg: v1.ConfigFile{}},
		{name: "os only", cfg: v1.ConfigFile{OS: "linux"}},
		{name: "other architecture", cfg: v1.ConfigFile{OS: "linux", Architecture: "ppc64le"}, wantErr: api.ErrNotFound},
		{name: "other os", cfg: v1.ConfigFile{OS: "windows", Architecture: "amd64"}, wantErr: api.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkConfigPlatform(&tt.cfg, amd64, "example")
			if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestCleanEntryName(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{in: "a/b", want: "a/b"},
		{in: "/a/b", want: "a/b"},
		{in: "./a//b/", want: "a/b"},
		{in: "a/../b", want: "b"},
		{in: "./", want: ""},
		{in: "/", want: ""},
		{in: ".", want: ""},
		{in: "..", wantErr: api.ErrInvalid},
		{in: "../x", wantErr: api.ErrInvalid},
		{in: "a/../../x", wantErr: api.ErrInvalid},
		{in: "/../x", wantErr: api.ErrInvalid},
		{in: "a/b/../../../x", wantErr: api.ErrInvalid},
		{in: "a\x00b", wantErr: api.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := cleanEntryName(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %q, %v; want an error wrapping %v", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("cleanEntryName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
