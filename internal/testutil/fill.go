package testutil

import (
	"errors"
	"os"
	"syscall"
	"testing"
)

// Fill appends to the file at path (creating it) until its filesystem is
// full, as another writer could: then not a byte more fits. The test
// removes the file to free the room.
func Fill(t testing.TB, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if errors.Is(err, syscall.ENOSPC) {
		return // not even an inode left
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 1} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}
