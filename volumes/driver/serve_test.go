package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// rawClient posts bodies as they are to a plugin socket.
func rawClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// post sends body to endpoint and returns the status and the decoded
// answer, which must be JSON.
func post(t *testing.T, c *http.Client, method, endpoint string, body io.Reader) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, "http://plugin/"+endpoint, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", endpoint, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	var ans map[string]any
	if err := json.Unmarshal(b, &ans); err != nil {
		t.Fatalf("%s: answer %q is not a JSON object: %v", endpoint, b, err)
	}
	return resp.StatusCode, ans
}

// endless is a body that never ends, as a 400 MB one would not.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// TestHostileRequests: every endpoint refuses, with a plugin-protocol error
// ({"Err": "..."}), bodies past the limit (without reading them whole),
// trailing data after the JSON, bodies that are not one JSON value, and
// names, mount IDs and options past their limits; nothing is created and
// the state file does not grow; the plugin keeps serving.
func TestHostileRequests(t *testing.T) {
	root := t.TempDir()
	d, sock := serveDriver(t, root)
	c := rawClient(sock)
	if status, ans := post(t, c, http.MethodPost, "VolumeDriver.Create", strings.NewReader(`{"Name":"v"}`)); status != http.StatusOK || ans["Err"] != nil {
		t.Fatalf("Create: %d %v", status, ans)
	}
	before, err := os.ReadFile(d.statePath())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 300)
	many := map[string]string{}
	for i := range MaxOptions + 1 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	manyJSON, _ := json.Marshal(map[string]any{"Name": "w", "Opts": many})
	bodies := []struct {
		name string
		body func() io.Reader
		// only: the endpoints it applies to (nil: all that take a body).
		only []string
	}{
		{"endless", func() io.Reader { return io.LimitReader(endless{}, 400<<20) }, nil},
		{"just past the limit", func() io.Reader {
			return strings.NewReader(`{"Name":"v","ID":"` + strings.Repeat("x", MaxRequestBody) + `"}`)
		}, nil},
		{"trailing garbage", func() io.Reader { return strings.NewReader(`{"Name":"v","ID":"c"} garbage`) }, nil},
		{"a second value", func() io.Reader { return strings.NewReader(`{"Name":"v","ID":"c"}{"Name":"v"}`) }, nil},
		{"not JSON", func() io.Reader { return strings.NewReader(`Name=v`) }, nil},
		{"unterminated", func() io.Reader { return strings.NewReader(`{"Name":"v"`) }, nil},
		{"wrong type", func() io.Reader { return strings.NewReader(`{"Name":["v"]}`) }, volumeEndpoints},
		{"empty", func() io.Reader { return strings.NewReader(``) }, volumeEndpoints},
		{"long name", func() io.Reader { return strings.NewReader(`{"Name":"` + long + `","ID":"c"}`) }, volumeEndpoints},
		{"long mount ID", func() io.Reader {
			return strings.NewReader(`{"Name":"v","ID":"` + strings.Repeat("i", MaxMountIDLen+1) + `"}`)
		}, []string{"VolumeDriver.Mount", "VolumeDriver.Unmount"}},
		{"control characters in the mount ID", func() io.Reader { return strings.NewReader(`{"Name":"v","ID":"a\nb"}`) },
			[]string{"VolumeDriver.Mount", "VolumeDriver.Unmount"}},
		{"too many options", func() io.Reader { return strings.NewReader(string(manyJSON)) }, []string{"VolumeDriver.Create"}},
		{"long option name", func() io.Reader {
			return strings.NewReader(`{"Name":"w","Opts":{"` + strings.Repeat("k", MaxOptionKeyLen+1) + `":"v"}}`)
		}, []string{"VolumeDriver.Create"}},
		{"long option value", func() io.Reader {
			return strings.NewReader(`{"Name":"w","Opts":{"path":"/` + strings.Repeat("p", MaxOptionValueLen) + `"}}`)
		}, []string{"VolumeDriver.Create"}},
	}
	endpoints := append([]string{"Plugin.Activate", "VolumeDriver.List", "VolumeDriver.Capabilities"}, volumeEndpoints...)
	for _, b := range bodies {
		for _, ep := range endpoints {
			if b.only != nil && !contains(b.only, ep) {
				continue
			}
			t.Run(b.name+"/"+ep, func(t *testing.T) {
				status, ans := post(t, c, http.MethodPost, ep, b.body())
				msg, _ := ans["Err"].(string)
				if status == http.StatusOK || msg == "" {
					t.Errorf("%s with %s: %d %v, want a plugin error", ep, b.name, status, ans)
				}
				if len(msg) > 1024 {
					t.Errorf("error message of %d bytes", len(msg))
				}
			})
		}
	}
	for _, tc := range []struct{ method, endpoint string }{
		{http.MethodGet, "VolumeDriver.List"},
		{http.MethodPut, "VolumeDriver.Create"},
		{http.MethodPost, "VolumeDriver.Explode"},
		{http.MethodPost, ""},
	} {
		status, ans := post(t, c, tc.method, tc.endpoint, strings.NewReader(`{}`))
		if status == http.StatusOK || ans["Err"] == nil {
			t.Errorf("%s /%s: %d %v, want a plugin error", tc.method, tc.endpoint, status, ans)
		}
	}
	after, err := os.ReadFile(d.statePath())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("state file changed by refused requests (-before +after):\n%s", diff)
	}
	// Still serving, and well-formed requests work, with or without the
	// trailing white space encoders add.
	for _, body := range []string{`{"Name":"v","ID":"c"}`, "{\"Name\":\"v\",\"ID\":\"c\"}\n"} {
		if status, ans := post(t, c, http.MethodPost, "VolumeDriver.Mount", strings.NewReader(body)); status != http.StatusOK || ans["Mountpoint"] == "" {
			t.Errorf("Mount %q: %d %v", body, status, ans)
		}
	}
	for _, ep := range []string{"Plugin.Activate", "VolumeDriver.List", "VolumeDriver.Capabilities"} {
		for _, body := range []string{"", "{}", "null"} {
			if status, ans := post(t, c, http.MethodPost, ep, strings.NewReader(body)); status != http.StatusOK || ans["Err"] != nil {
				t.Errorf("%s with body %q: %d %v", ep, body, status, ans)
			}
		}
	}
}

// volumeEndpoints take a volume name.
var volumeEndpoints = []string{
	"VolumeDriver.Create", "VolumeDriver.Remove", "VolumeDriver.Mount", "VolumeDriver.Unmount",
	"VolumeDriver.Path", "VolumeDriver.Get",
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// FuzzDecode: a request body is accepted only as one JSON value with
// nothing but white space after it.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"Name":"v"}`, `{"Name":"v"} x`, `{}{}`, ``, `null`, "{\"Name\":\"v\"}\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var req struct{ Name string }
		err := decode([]byte(body), &req)
		if err == nil && !json.Valid([]byte(body)) {
			t.Fatalf("decode accepted %q, not one JSON value", body)
		}
		if err := decode([]byte(body), nil); err == nil && strings.TrimSpace(body) != "" && !json.Valid([]byte(body)) {
			t.Fatalf("decode without arguments accepted %q", body)
		}
	})
}
