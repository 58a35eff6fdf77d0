// Package image provisions container root filesystems: the only
// implementation of containerizer.Provisioner. A Store makes one of three
// kinds of root filesystem under the container's directory (Dir), chosen by
// the ProvisionRequest:
//
//   - Neither Image nor Rootfs: the host's filesystem, read-only, as Mesos
//     command tasks see it. Dir/rootfs is an empty directory in which each
//     top-level host directory except /proc, /sys, /dev, /run, /tmp and
//     /lost+found becomes a recursive read-only bind mount ("rbind", "rro",
//     "rprivate"; runc 1.1 or crun apply "rro" with mount_setattr) and each
//     top-level symbolic link (bin -> usr/bin) is recreated. /mnt is rebuilt
//     the same way from the host's /mnt, around a writable sandbox,
//     Dir/sandbox, bound at /mnt/sandbox; the image config sets WorkingDir
//     to /mnt/sandbox and CAISSON_SANDBOX=/mnt/sandbox. /tmp and /run are
//     private tmpfs. The store's root and Config.HideHostPaths are covered
//     by empty read-only tmpfs where they lie in a bound directory, so a
//     container cannot read Caisson's state. Provision mounts nothing
//     itself: it returns the mounts, with Rootfs.Readonly set, for the
//     runtime to make in the container's mount namespace.
//   - Rootfs: a host directory, canonicalised (filepath.Abs, EvalSymlinks),
//     which must exist, be a directory, not be "/", and not overlap Dir.
//     Dir/rootfs is an overlay mount with the directory as its only lower
//     layer and Dir/upper, Dir/work above it, so the directory is never
//     modified.
//   - Image: an image, resolved for the requested platform. Its layers are
//     unpacked once into the cache, and Dir/rootfs is an overlay of them
//     (topmost first) under Dir/upper. Rootfs.Config carries the image's
//     Entrypoint, Cmd, Env, WorkingDir and User, Rootfs.Image the canonical
//     reference and Rootfs.Digest the config digest (the image ID).
//
// Release unmounts (retrying a busy mount a few times, then detaching it)
// and removes Dir/rootfs, Dir/upper, Dir/work and Dir/sandbox. It is
// idempotent, and it never removes a tree in which something is still
// mounted. A Provision that fails undoes what it made.
//
// # Image references
//
//	oci:PATH[:TAG|:sha256:HEX]       an OCI image layout directory. A layout that
//	                                 holds several manifests is chosen from by the
//	                                 org.opencontainers.image.ref.name annotation
//	                                 (TAG) or by digest; one manifest needs neither.
//	docker-archive:PATH[:REPO:TAG]   a `docker save` tarball; REPO:TAG picks an
//	                                 image when it holds several.
//	docker://REF, REF                a registry image, as Docker names it
//	                                 (busybox = index.docker.io/library/busybox:latest).
//
// PATH ends at the first colon, so it cannot contain one; a relative PATH is
// taken from the current directory. Registries on localhost, 127.0.0.1,
// *.localhost and private (RFC 1918) addresses, and those in
// Config.InsecureRegistries, are reached over plain http; credentials come
// from the Docker config (~/.docker/config.json and credential helpers).
//
// From an index or manifest list, the manifest for the platform asked
// ("os/arch[/variant]", this host's when empty) is chosen; a variant is
// compared only when both sides name one. When none matches, the error
// wraps api.ErrNotFound and lists the platforms available. A single image
// whose configuration names another platform is refused the same way.
//
// # Verifying images
//
// An image is untrusted until checked, whatever its source; nothing of it
// is used before the check that covers it:
//
//   - every blob (index, manifest, config, layer) is checked against the
//     descriptor that names it, digest and size, as it is read: an OCI
//     layout's index.json names its manifests (a layout is not signed:
//     index.json is its root of trust), a registry's tag or REPO@DIGEST
//     names the manifest or index, an index its manifests, a manifest its
//     config and layers. A `docker save` archive's manifest.json is its
//     root of trust; a config or layer whose file name states a digest
//     (sha256:HEX, HEX.json, HEX.tar.gz, blobs/sha256/HEX) is checked
//     against it. go-containerregistry reaches registries (the auth
//     handshake, credentials) but does not read or check blobs here;
//   - only sha256 and sha512 digests, in lowercase hex, are known; a
//     descriptor with another algorithm, or a negative size, is invalid;
//   - the config's rootfs.diff_ids must hold one sha256 per layer, and each
//     layer's uncompressed content must have its diff ID;
//   - manifests and indexes are read up to 4 MiB, configs up to 8 MiB;
//   - a layer is a tar, compressed with gzip or zstd (its first bytes
//     tell) or not; zstd windows are limited to 128 MiB. Foreign layers are
//     refused.
//
// A blob that differs from its descriptor, or a layer from its diff ID, is
// refused with an error wrapping api.ErrCorrupt; malformed documents and
// unknown algorithms with api.ErrInvalid, documents over their limit with
// api.ErrTooLarge. When a layer cannot be unpacked, the rest of its blob
// is still read (within its stated size) to tell a corrupt blob from a
// well-formed but refused one. A layer is unpacked in tmp/ and renamed into
// the cache only once checked, so a refused one leaves nothing. A layer
// already in the cache is not read again: its diff ID names it.
//
// The files of a layout or an archive, like the files read from a
// container's root filesystem (its /etc/passwd), are read through
// internal/safefile: resolved inside their directory, opened only if they
// are regular files (a FIFO, a device or a directory is refused before it
// is opened, so nothing blocks), and read with a limit.
//
// # Size limit
//
// Config.MaxImageSize (DefaultMaxImageSize, 32 GiB, when zero) limits an
// image's uncompressed size: the sum of its distinct layers' sizes, each
// the larger of its uncompressed tar's length and the sum, over its
// entries, of a 512-byte header and each regular file's apparent size
// rounded up to 512 bytes. A sparse file counts its full apparent size, as
// it is unpacked written out. Layers already in the cache count too. An
// image over the limit is refused, before the entry that passes it is
// written, with an error that names the limit and wraps api.ErrTooLarge.
//
// # Cache
//
// Config.Root (for example /var/lib/caisson/images) holds:
//
//	layers/sha256/<diff ID hex>/   one unpacked layer, in overlayfs form;
//	                               never modified once in place
//	layers/meta/<diff ID hex>.json its size (see Size limit)
//	layers/empty/                  the lower directory of an image with no layers
//	tmp/layer-<hex>-*/             layers being unpacked
//	leases/<hash>.json             one per provisioned container, until its
//	                               Release: the image and layers it uses
//	locks/                         flock files: store.lock, images.lock and
//	                               one per layer
//	images.json                    every image provisioned: reference and
//	                               platform -> manifest digest, config digest
//	                               and config, written atomically
//
// A layer is unpacked into tmp/ and renamed into place while holding its
// lock, so two provisions of one layer, in one process or several sharing
// the root, unpack it once, and a crash never leaves half a layer in place.
// A registry image recorded in images.json is provisioned without the
// registry when the registry cannot be reached, and a REPO@DIGEST reference
// without asking it at all; its layers come from the cache. The root is
// 0700 and layers/ always is: layers hold set-id files and device nodes.
//
// List, Remove and Prune (caisson image ls, rm, prune) manage the cache.
// Images and layers are kept by marking, not counting: a layer stays while
// an image in images.json or a container's lease names it, or a mounted
// overlay has it as a lower directory (a container provisioned before
// leases existed), so layers that images share need no reference counts
// for a crash to leave wrong.
// Remove refuses, with an error wrapping api.ErrConflict, to remove an
// image that a container uses (the caller's records, exited containers
// included, and the leases); with Force, an image that only exited
// containers use goes, its layers staying while those containers' root
// filesystems do. Removing one of an image's references only untags it; a
// REPO@DIGEST reference recorded beside a tag goes with the tag. Prune
// removes every image that no container uses, every layer that no image or
// lease names, stale leases and what crashes left in tmp/. Provision holds
// locks/store.lock shared from resolving the image until the lease is
// written; Remove and Prune hold it exclusively, so a layer is never
// removed between being found (or unpacked) and being leased.
//
// # Unpacking layers safely
//
// Layers are untrusted input, unpacked by root. extractLayer reads the tar
// stream itself (archive/tar) and:
//
//   - checks that the uncompressed stream's digest is the layer's diff ID
//     (api.ErrCorrupt otherwise) and counts its size (see Size limit);
//   - makes absolute names relative (tar convention) and resolves ".."
//     lexically, refusing any name that climbs above the layer root;
//   - checks every existing parent of an entry with Lstat inside the layer:
//     a parent that is a symbolic link or not a directory is refused, since a
//     legitimate layer never writes through a link;
//   - refuses a hard link whose target climbs out, goes through a symbolic
//     link, is missing from the layer or is a directory, and links a
//     symbolic link itself, never its target;
//   - keeps symbolic link targets as written (absolute ones included: they
//     are resolved inside the container) and never follows one: files are
//     created with O_EXCL|O_NOFOLLOW, an earlier entry of the same name is
//     removed (never followed) first, and owners and times are set with
//     lchown and AT_SYMLINK_NOFOLLOW;
//   - converts whiteouts: ".wh..wh..opq" sets trusted.overlay.opaque=y on
//     its directory and ".wh.NAME" becomes a 0:0 character device NAME; a
//     whiteout that names no single file ("", ".", "..") is refused;
//   - drops trusted.overlay.* and user.overlay.* attributes from the
//     archive, so a layer cannot steer the overlay (redirects, metacopy);
//   - refuses anything else that would write outside the layer directory
//     with an error wrapping api.ErrInvalid that names the layer and entry,
//     and removes the partly unpacked directory.
//
// Regular files, directories, symbolic and hard links, character and block
// devices and FIFOs are unpacked with their mode (set-id bits included),
// owner, times and extended attributes (PAX SCHILY.xattr.*); directory
// times are set last. FuzzExtract checks on random archives that nothing is
// ever created outside the layer directory.
//
// Linux only: elsewhere the package builds, host mode works, and the rest
// fails with api.ErrUnavailable.
package image
