//go:build !linux

package userfile

import (
	"io/fs"
	"os"
)

func onProcfs(string) bool                        { return false }
func mayFollow(string, fs.FileInfo, string) error { return nil }
func keepOwner(*os.File, fs.FileInfo)             {}

func openRead(path string) (*os.File, error) { return os.Open(path) }
func waitWriter(*os.File) error              { return nil }
