package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 12

// MaxPayload is the largest payload a frame may carry (16 MiB).
const MaxPayload = 16 << 20

// RequestWindow is the number of request body bytes the front may send on a
// stream before the worker grants credit (fixed in version 1).
const RequestWindow = 64 << 10

// Type says what a frame carries.
type Type uint8

// Frame types; docs/protocol.md gives each one's payload and direction.
const (
	TypeHello    Type = 0x01
	TypeFailed   Type = 0x02
	TypeChannel  Type = 0x03
	TypeStop     Type = 0x04
	TypePing     Type = 0x05
	TypePong     Type = 0x06
	TypeFork     Type = 0x07 // front → fork server (preload)
	TypeForked   Type = 0x08 // fork server → front
	TypeExited   Type = 0x09 // fork server → front
	TypeRequest  Type = 0x10
	TypeData     Type = 0x11
	TypeResponse Type = 0x12
	TypeFile     Type = 0x13
	TypeCredit   Type = 0x14
	TypeCancel   Type = 0x15
	TypeAbort    Type = 0x16
	TypeMessage  Type = 0x17 // ASGI WebSocket: a message, or part of one
	TypeClose    Type = 0x18 // ASGI WebSocket: the socket closed
)

var typeNames = map[Type]string{
	TypeHello: "HELLO", TypeFailed: "FAILED", TypeChannel: "CHANNEL", TypeStop: "STOP",
	TypePing: "PING", TypePong: "PONG", TypeFork: "FORK", TypeForked: "FORKED", TypeExited: "EXITED",
	TypeRequest: "REQUEST", TypeData: "DATA",
	TypeResponse: "RESPONSE", TypeFile: "FILE", TypeCredit: "CREDIT", TypeCancel: "CANCEL",
	TypeAbort: "ABORT", TypeMessage: "MESSAGE", TypeClose: "CLOSE",
}

// String returns the type's name from the spec, or its number when unknown.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Known reports whether t is a type of this protocol version.
func (t Type) Known() bool {
	_, ok := typeNames[t]
	return ok
}

// Flags is the frame's flag field.
type Flags uint16

// FlagEnd (END_STREAM) marks the last frame of the sender's half of a stream.
const FlagEnd Flags = 0x0001

// Flags of MESSAGE frames (ASGI WebSocket).
const (
	// FlagText marks a text message (UTF-8); without it a message is binary.
	FlagText Flags = 0x0002
	// FlagMore says the message continues in the stream's next MESSAGE.
	FlagMore Flags = 0x0004
)

// Header is a decoded frame header.
type Header struct {
	Version uint8
	Type    Type
	Flags   Flags
	Stream  uint32
	Length  uint32
}

// End reports whether the END_STREAM flag is set.
func (h Header) End() bool { return h.Flags&FlagEnd != 0 }

// Errors returned by the decoders. Callers branch on them with errors.Is.
var (
	// ErrFrameTooLarge: a header announced a payload over MaxPayload.
	ErrFrameTooLarge = errors.New("wire: frame payload too large")
	// ErrVersion: a header carried a version other than Version.
	ErrVersion = errors.New("wire: unsupported protocol version")
	// ErrUnknownType: a header carried a type this version does not define.
	ErrUnknownType = errors.New("wire: unknown frame type")
	// ErrMalformed: a payload does not follow the spec.
	ErrMalformed = errors.New("wire: malformed payload")
	// ErrShort: the buffer ends before the frame does.
	ErrShort = errors.New("wire: short buffer")
)

// AppendHeader appends the 12-byte encoding of h to dst. The version written
// is always Version, whatever h.Version holds.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, Version, byte(h.Type))
	dst = binary.LittleEndian.AppendUint16(dst, uint16(h.Flags))
	dst = binary.LittleEndian.AppendUint32(dst, h.Stream)
	return binary.LittleEndian.AppendUint32(dst, h.Length)
}

// ParseHeader decodes a frame header from the first HeaderSize bytes of b.
// It checks the version, the type and the length limit, so a caller never
// allocates for a frame it would reject.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrShort
	}
	h := Header{
		Version: b[0],
		Type:    Type(b[1]),
		Flags:   Flags(binary.LittleEndian.Uint16(b[2:])),
		Stream:  binary.LittleEndian.Uint32(b[4:]),
		Length:  binary.LittleEndian.Uint32(b[8:]),
	}
	if h.Version != Version {
		return h, fmt.Errorf("%w: got %d, want %d", ErrVersion, h.Version, Version)
	}
	if !h.Type.Known() {
		return h, fmt.Errorf("%w %s", ErrUnknownType, h.Type)
	}
	if h.Length > MaxPayload {
		return h, fmt.Errorf("%w: %d bytes (limit %d)", ErrFrameTooLarge, h.Length, MaxPayload)
	}
	return h, nil
}

// AppendFrame appends a whole frame (header and payload) to dst.
func AppendFrame(dst []byte, t Type, flags Flags, stream uint32, payload []byte) []byte {
	dst = AppendHeader(dst, Header{Type: t, Flags: flags, Stream: stream, Length: uint32(len(payload))})
	return append(dst, payload...)
}

// AppendCredit appends a CREDIT frame granting n bytes on stream.
func AppendCredit(dst []byte, stream uint32, n uint32) []byte {
	dst = AppendHeader(dst, Header{Type: TypeCredit, Stream: stream, Length: 4})
	return binary.LittleEndian.AppendUint32(dst, n)
}

// ParseCredit decodes a CREDIT payload.
func ParseCredit(p []byte) (uint32, error) {
	if len(p) != 4 {
		return 0, fmt.Errorf("%w: CREDIT payload of %d bytes, want 4", ErrMalformed, len(p))
	}
	return binary.LittleEndian.Uint32(p), nil
}

// CancelReason is why the front cancels a stream: the payload of a CANCEL
// frame.
type CancelReason uint8

// Cancel reasons. CancelClientGone travels as an empty payload (what
// every CANCEL was before reasons existed); the others as one byte.
const (
	// CancelClientGone: the client left, or the front cannot deliver the
	// response. The worker stops at its next send; the app is not
	// interrupted.
	CancelClientGone CancelReason = 0
	// CancelTimeout: the request timed out. The worker also interrupts the
	// app's thread (raises whisk_worker.RequestTimeout in it).
	CancelTimeout CancelReason = 1
)

// AppendCancel appends a CANCEL frame for stream with reason.
func AppendCancel(dst []byte, stream uint32, reason CancelReason) []byte {
	if reason == CancelClientGone {
		return AppendHeader(dst, Header{Type: TypeCancel, Stream: stream})
	}
	dst = AppendHeader(dst, Header{Type: TypeCancel, Stream: stream, Length: 1})
	return append(dst, byte(reason))
}

// ParseCancel decodes a CANCEL payload. A reason this version does not know
// is returned as it is: a receiver treats it as CancelClientGone.
func ParseCancel(p []byte) (CancelReason, error) {
	switch len(p) {
	case 0:
		return CancelClientGone, nil
	case 1:
		return CancelReason(p[0]), nil
	}
	return 0, fmt.Errorf("%w: CANCEL payload of %d bytes, want 0 or 1", ErrMalformed, len(p))
}

// FileRange is the payload of a FILE frame: where in the attached file the
// response body is. Count −1 means "to the end of the file".
type FileRange struct {
	Offset uint64
	Count  int64
}

// AppendFile appends a FILE frame's header and payload (the descriptor is
// sent beside it, see Conn.WriteWithFD).
func AppendFile(dst []byte, flags Flags, stream uint32, r FileRange) []byte {
	dst = AppendHeader(dst, Header{Type: TypeFile, Flags: flags, Stream: stream, Length: 16})
	dst = binary.LittleEndian.AppendUint64(dst, r.Offset)
	return binary.LittleEndian.AppendUint64(dst, uint64(r.Count))
}

// ParseFile decodes a FILE payload.
func ParseFile(p []byte) (FileRange, error) {
	if len(p) != 16 {
		return FileRange{}, fmt.Errorf("%w: FILE payload of %d bytes, want 16", ErrMalformed, len(p))
	}
	r := FileRange{Offset: binary.LittleEndian.Uint64(p), Count: int64(binary.LittleEndian.Uint64(p[8:]))}
	if r.Count < -1 || r.Offset > 1<<62 {
		return FileRange{}, fmt.Errorf("%w: FILE range offset %d count %d", ErrMalformed, r.Offset, r.Count)
	}
	return r, nil
}
