// Package loopdev attaches regular files to loop block devices, so that a
// filesystem image can be formatted and mounted.
//
// A device is attached with LO_FLAGS_AUTOCLEAR: the kernel frees it when its
// last user lets go, so a mount made from it needs no explicit detach and a
// crash leaves no device behind once the mount is gone.
//
//	dev, _ := Attach(image)        // device bound, held by our descriptor
//	mkfs dev.Path(); mount dev.Path() on dir   // the mount now holds it too
//	dev.Close()                    // drop our descriptor; the mount keeps it alive
//	umount dir                     // last user gone: the kernel frees the device
//
// Before anything is mounted, Detach frees the device at once (the failure
// path). Find lists the devices still backed by a file, to reconcile after a
// crash.
package loopdev
