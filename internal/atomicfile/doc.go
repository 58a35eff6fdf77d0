// Package atomicfile replaces files so that a crash leaves either the old
// content or the new, never a mix: write a temporary file in the same
// directory, then rename it over the target. SyncDir makes such a rename
// (or any other change to a directory's entries) durable.
package atomicfile
