// Package lru provides a set of bounded size that forgets its least recently used key
// when it is full.
package lru
