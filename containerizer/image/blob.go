package image

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/caisson/caisson/api"
)

// Limits on what an image may make Caisson read into memory. A manifest or
// an index over 4 MiB is refused, as containerd does; configurations are
// larger (their history), but not by much.
const (
	maxManifestSize = 4 << 20
	maxConfigSize   = 8 << 20
)

// DefaultMaxImageSize is the limit on an image's uncompressed size when
// Config.MaxImageSize is zero.
const DefaultMaxImageSize = 32 << 30

// blobOpener opens the blob a descriptor names, unchecked: the caller
// checks what it reads with a verifier.
type blobOpener func(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error)

// checkDigest refuses digests that cannot name a blob: only sha256 and
// sha512 (the algorithms the OCI image spec registers) are known, with
// lowercase hex of the right length.
func checkDigest(h v1.Hash) error {
	n := 0
	switch h.Algorithm {
	case "sha256":
		n = 64
	case "sha512":
		n = 128
	default:
		return fmt.Errorf("digest %q: unknown algorithm %q: %w", h.String(), h.Algorithm, api.ErrInvalid)
	}
	if len(h.Hex) != n || !isLowerHex(h.Hex) {
		return fmt.Errorf("digest %q is not %s:<%d lowercase hex digits>: %w", h.String(), h.Algorithm, n, api.ErrInvalid)
	}
	return nil
}

func isLowerHex(s string) bool {
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkDescriptor refuses a descriptor whose digest is unknown or malformed
// or whose size is negative.
func checkDescriptor(d v1.Descriptor) error {
	if err := checkDigest(d.Digest); err != nil {
		return err
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size %d: %w", d.Digest, d.Size, api.ErrInvalid)
	}
	return nil
}

// verifier reads a blob and checks it against its descriptor: it refuses
// to read past the size, and at the end of the stream returns an error
// wrapping api.ErrCorrupt, instead of io.EOF, when the size or the digest
// differs.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	want v1.Descriptor
	what string
	n    int64
	done bool
	err  error // the verdict, once the stream ended
}

func newVerifier(r io.Reader, d v1.Descriptor, what string) (*verifier, error) {
	if err := checkDescriptor(d); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	h, err := v1.Hasher(d.Digest.Algorithm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", what, err, api.ErrInvalid)
	}
	// One byte more than the size, to see that there is more.
	limit := d.Size
	if limit < math.MaxInt64 {
		limit++
	}
	return &verifier{r: io.LimitReader(r, limit), h: h, want: d, what: what}, nil
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.done {
		return 0, v.result()
	}
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.n > v.want.Size {
		v.done = true
		v.err = fmt.Errorf("%s %s: more than the %d bytes its descriptor says: %w", v.what, v.want.Digest, v.want.Size, api.ErrCorrupt)
		return 0, v.err
	}
	if errors.Is(err, io.EOF) {
		v.done = true
		v.err = v.check()
		return n, v.result()
	}
	return n, err
}

func (v *verifier) result() error {
	if v.err != nil {
		return v.err
	}
	return io.EOF
}

func (v *verifier) check() error {
	if v.n != v.want.Size {
		return fmt.Errorf("%s %s: %d bytes, not the %d its descriptor says: %w", v.what, v.want.Digest, v.n, v.want.Size, api.ErrCorrupt)
	}
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.Digest.Hex {
		return fmt.Errorf("%s %s: content digest is %s:%s: %w", v.what, v.want.Digest, v.want.Digest.Algorithm, got, api.ErrCorrupt)
	}
	return nil
}

// drain reads what is left (at most one byte past the size) and returns
// the verdict: nil when the blob is what its descriptor says.
func (v *verifier) drain() error {
	if !v.done {
		if _, err := io.Copy(io.Discard, v); err != nil && !errors.Is(err, api.ErrCorrupt) {
			return err
		}
	}
	return v.err
}

// verifyBytes checks a blob read whole against its descriptor.
func verifyBytes(data []byte, d v1.Descriptor, what string) error {
	v, err := newVerifier(bytes.NewReader(data), d, what)
	if err != nil {
		return err
	}
	return v.drain()
}

// readBlob reads the blob d names, at most limit bytes, and checks it. A
// descriptor that embeds its data needs no opening.
func readBlob(ctx context.Context, open blobOpener, d v1.Descriptor, limit int64, what string) ([]byte, error) {
	if err := checkDescriptor(d); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if d.Size > limit {
		return nil, fmt.Errorf("%s %s: %d bytes, over the limit of %d: %w", what, d.Digest, d.Size, limit, api.ErrTooLarge)
	}
	if d.Data != nil {
		if err := verifyBytes(d.Data, d, what); err != nil {
			return nil, err
		}
		return d.Data, nil
	}
	rc, err := open(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, d.Digest, err)
	}
	defer rc.Close()
	v, err := newVerifier(rc, d, what)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(v)
	if err != nil {
		return nil, err
	}
	return data, nil
}
