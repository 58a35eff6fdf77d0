package imagetest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Raw is an image as its blobs, for tests that damage one: its config, its
// layer blobs (compressed as their media types say) and the manifest that
// names them, which Seal computes.
type Raw struct {
	Config     []byte
	ConfigType types.MediaType
	Layers     [][]byte
	LayerTypes []types.MediaType
	// Manifest is the manifest Seal made, and ManifestType its media type.
	Manifest     []byte
	ManifestType types.MediaType
}

// NewRaw makes a Raw image of the given uncompressed layer tars, bottom
// first, as ImageFromLayers makes it, sealed.
func NewRaw(t testing.TB, cfg Config, oci bool, layers ...[]byte) *Raw {
	t.Helper()
	img := ImageFromLayers(t, cfg, oci, layers...)
	r := &Raw{ConfigType: types.DockerConfigJSON, ManifestType: types.DockerManifestSchema2}
	if oci {
		r.ConfigType, r.ManifestType = types.OCIConfigJSON, types.OCIManifestSchema1
	}
	var err error
	if r.Config, err = img.RawConfigFile(); err != nil {
		t.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		mt, err := l.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		r.Layers = append(r.Layers, data)
		r.LayerTypes = append(r.LayerTypes, mt)
	}
	r.Seal(t)
	return r
}

// Digest returns the sha256 descriptor digest of data.
func Digest(data []byte) v1.Hash {
	sum := sha256.Sum256(data)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// Descriptor describes data.
func Descriptor(data []byte, mt types.MediaType) v1.Descriptor {
	return v1.Descriptor{MediaType: mt, Size: int64(len(data)), Digest: Digest(data)}
}

// ConfigFile parses the config.
func (r *Raw) ConfigFile(t testing.TB) *v1.ConfigFile {
	t.Helper()
	cf, err := v1.ParseConfigFile(bytes.NewReader(r.Config))
	if err != nil {
		t.Fatal(err)
	}
	return cf
}

// SetConfig replaces the config with cf and seals the image again: the
// result is consistent, digests and sizes included, whatever cf says.
func (r *Raw) SetConfig(t testing.TB, cf *v1.ConfigFile) {
	t.Helper()
	data, err := json.Marshal(cf)
	if err != nil {
		t.Fatal(err)
	}
	r.Config = data
	r.Seal(t)
}

// Seal makes the manifest from the config and the layers.
func (r *Raw) Seal(t testing.TB) {
	t.Helper()
	r.Manifest = r.manifest(t, func(*v1.Manifest) {})
}

func (r *Raw) manifest(t testing.TB, edit func(*v1.Manifest)) []byte {
	t.Helper()
	m := v1.Manifest{SchemaVersion: 2, MediaType: r.ManifestType, Config: Descriptor(r.Config, r.ConfigType)}
	for i, l := range r.Layers {
		m.Layers = append(m.Layers, Descriptor(l, r.LayerTypes[i]))
	}
	edit(&m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// EditManifest replaces the manifest with an edited one.
func (r *Raw) EditManifest(t testing.TB, edit func(*v1.Manifest)) {
	t.Helper()
	r.Manifest = r.manifest(t, edit)
}

// Blobs returns every blob by digest: config, layers and manifest.
func (r *Raw) Blobs() map[v1.Hash][]byte {
	out := map[v1.Hash][]byte{Digest(r.Config): r.Config, Digest(r.Manifest): r.Manifest}
	for _, l := range r.Layers {
		out[Digest(l)] = l
	}
	return out
}

// WriteRawLayout writes r as a new OCI image layout at dir, tagged tag,
// and returns its reference.
func WriteRawLayout(t testing.TB, dir, tag string, r *Raw) string {
	t.Helper()
	writeFiles(t, dir, map[string][]byte{"oci-layout": []byte(`{"imageLayoutVersion":"1.0.0"}`)})
	files := map[string][]byte{}
	for d, data := range r.Blobs() {
		files[filepath.Join("blobs", d.Algorithm, d.Hex)] = data
	}
	writeFiles(t, dir, files)
	desc := Descriptor(r.Manifest, r.ManifestType)
	desc.Annotations = map[string]string{"org.opencontainers.image.ref.name": tag}
	WriteIndex(t, dir, desc)
	return "oci:" + dir + ":" + tag
}

// WriteIndex writes a layout's index.json listing descs.
func WriteIndex(t testing.TB, dir string, descs ...v1.Descriptor) {
	t.Helper()
	data, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string][]byte{"index.json": data})
}

// BlobPath is where a layout keeps the blob with digest d.
func BlobPath(dir string, d v1.Hash) string {
	return filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
}

func writeFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// ArchiveFile is one file of a `docker save` archive.
type ArchiveFile struct {
	Name string
	Data []byte
}

// RawArchive returns the files of a `docker save` archive of r named
// ArchiveName, as go-containerregistry names them: manifest.json,
// "sha256:HEX" for the config and "HEX.tar.gz" for each layer.
func RawArchive(t testing.TB, r *Raw) []ArchiveFile {
	t.Helper()
	m := struct {
		Config   string
		RepoTags []string
		Layers   []string
	}{Config: Digest(r.Config).String(), RepoTags: []string{ArchiveName}}
	files := []ArchiveFile{{Name: m.Config, Data: r.Config}}
	for _, l := range r.Layers {
		name := Digest(l).Hex + ".tar.gz"
		m.Layers = append(m.Layers, name)
		files = append(files, ArchiveFile{Name: name, Data: l})
	}
	data, err := json.Marshal([]any{m})
	if err != nil {
		t.Fatal(err)
	}
	return append([]ArchiveFile{{Name: "manifest.json", Data: data}}, files...)
}

// WriteArchive writes files as a tar archive at path and returns its
// docker-archive reference.
func WriteArchive(t testing.TB, path string, files []ArchiveFile) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.Name, Mode: 0o644, Size: int64(len(f.Data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return "docker-archive:" + path
}

// PushRaw pushes r's blobs and manifest to host/repo:tag (the registry
// checks what it receives) and returns that reference.
func PushRaw(t testing.TB, host, repo, tag string, r *Raw) string {
	t.Helper()
	for d, data := range r.Blobs() {
		if d == Digest(r.Manifest) {
			continue
		}
		resp := do(t, http.MethodPost, "http://"+host+"/v2/"+repo+"/blobs/uploads/", "", nil)
		loc := resp.Header.Get("Location")
		if !strings.HasPrefix(loc, "http") {
			loc = "http://" + host + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		do(t, http.MethodPut, loc+sep+"digest="+d.String(), "application/octet-stream", data)
	}
	do(t, http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+tag, string(r.ManifestType), r.Manifest)
	return host + "/" + repo + ":" + tag
}

// PushIndex pushes an index of the given manifests (pushed before) to
// host/repo:tag and returns that reference.
func PushIndex(t testing.TB, host, repo, tag string, descs ...v1.Descriptor) string {
	t.Helper()
	data, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: descs})
	if err != nil {
		t.Fatal(err)
	}
	do(t, http.MethodPut, "http://"+host+"/v2/"+repo+"/manifests/"+tag, string(types.OCIImageIndex), data)
	return host + "/" + repo + ":" + tag
}

func do(t testing.TB, method, url, contentType string, body []byte) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s: %s", method, url, resp.Status, msg)
	}
	return resp
}

// Tamper changes what a registry serves: it gets the request's path and
// the body the registry would send, and returns the body to send instead.
// chunked sends it without a Content-Length.
type Tamper func(path string, body []byte) (out []byte, chunked bool)

// TamperingRegistry starts an in-memory registry on 127.0.0.1 whose GET
// answers pass through tamper, and returns its host:port. Pushes reach the
// registry untouched.
func TamperingRegistry(t testing.TB, tamper Tamper) string {
	t.Helper()
	inner := RegistryServer(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		inner.Config.Handler.ServeHTTP(rec, req)
		body, chunked := rec.Body.Bytes(), false
		if req.Method == http.MethodGet && rec.Code == http.StatusOK {
			body, chunked = tamper(req.URL.Path, body)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		if !chunked {
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		}
		w.WriteHeader(rec.Code)
		if f, ok := w.(http.Flusher); ok && chunked {
			f.Flush() // headers go out without a length: the body is chunked
		}
		_, _ = w.Write(body)
	}))
	if err := srv.Listener.Close(); err != nil {
		t.Fatal(err)
	}
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
