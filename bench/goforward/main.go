// Command goforward is the Go reference of bench/grpc_load.py: a grpc-go server that
// forwards every call, whatever its method, as raw bytes to one backend over one
// ClientConn (what a Go gRPC router costs when it does not parse what it forwards),
// and, with -identity, the fast identity ModelInfer model the bench measures against.
//
//	goforward -listen 127.0.0.1:0 -backend 127.0.0.1:9001   # the forwarder
//	goforward -listen 127.0.0.1:0 -identity                 # the model
//
// It prints "listening HOST:PORT" and then "ready" on stdout. Built by the bench at
// run time (GO111MODULE=off, GOPATH=/usr/share/gocode: Debian's golang-google-grpc-dev).
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

const (
	modelInfer  = "/inference.GRPCInferenceService/ModelInfer"
	countMethod = "/bench.Identity/Count"
	maxMessage  = 256 << 20
)

// rawCodec hands messages on as the bytes received: nothing is parsed or re-encoded.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return *b, nil
}

// Unmarshal keeps a reference to data: this grpc-go allocates every received message
// afresh and never reuses its buffer.
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	*b = data
	return nil
}

// Name is the content-subtype sent to the backend: "proto", so that any gRPC server
// takes the call as the ordinary protobuf call it is.
func (rawCodec) Name() string   { return "proto" }
func (rawCodec) String() string { return "proto" }

type forwarder struct {
	conn *grpc.ClientConn
}

// handle forwards one unary call (every OIP v2 RPC is unary): request message,
// metadata in, deadline and cancellation through the context; answer, headers and
// trailers (the status among them) back.
func (f *forwarder) handle(_ interface{}, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "no method in stream")
	}
	var req []byte
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	ctx := ss.Context()
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	var resp []byte
	var header, trailer metadata.MD
	err := f.conn.Invoke(ctx, method, &req, &resp, grpc.Header(&header), grpc.Trailer(&trailer))
	if len(header) > 0 {
		if herr := ss.SendHeader(header); herr != nil {
			return herr
		}
	}
	ss.SetTrailer(trailer)
	if err != nil {
		return err // a status from the backend travels as it came
	}
	return ss.SendMsg(&resp)
}

type identity struct {
	calls uint64
}

// handle answers ModelInfer with its inputs as outputs, and Count with the number of
// ModelInfer calls answered so far (8 bytes, little-endian), which the bench compares
// with the calls its load generator saw succeed.
func (m *identity) handle(_ interface{}, ss grpc.ServerStream) error {
	method, _ := grpc.MethodFromServerStream(ss)
	var req []byte
	if err := ss.RecvMsg(&req); err != nil {
		return err
	}
	switch method {
	case modelInfer:
		resp, err := identityResponse(req)
		if err != nil {
			return status.Error(codes.InvalidArgument, err.Error())
		}
		atomic.AddUint64(&m.calls, 1)
		return ss.SendMsg(&resp)
	case countMethod:
		out := make([]byte, 8)
		binary.LittleEndian.PutUint64(out, atomic.LoadUint64(&m.calls))
		return ss.SendMsg(&out)
	}
	return status.Errorf(codes.Unimplemented, "unknown method %s", method)
}

// identityResponse turns a serialized ModelInferRequest into the ModelInferResponse
// whose outputs are its inputs. The two messages share field numbers 1-5 (InferInputTensor
// and InferOutputTensor too), so the answer is the request without its requested
// outputs (field 6) and with raw_input_contents (7) renumbered raw_output_contents (6).
func identityResponse(req []byte) ([]byte, error) {
	out := make([]byte, 0, len(req))
	for i := 0; i < len(req); {
		key, n := binary.Uvarint(req[i:])
		if n <= 0 {
			return nil, errors.New("bad field key")
		}
		field, wire := key>>3, key&7
		end := i + n
		switch wire {
		case 0:
			_, m := binary.Uvarint(req[end:])
			if m <= 0 {
				return nil, errors.New("bad varint")
			}
			end += m
		case 1:
			end += 8
		case 5:
			end += 4
		case 2:
			size, m := binary.Uvarint(req[end:])
			if m <= 0 || size > uint64(len(req)) {
				return nil, errors.New("bad length")
			}
			end += m + int(size)
		default:
			return nil, fmt.Errorf("wire type %d", wire)
		}
		if end > len(req) {
			return nil, errors.New("truncated message")
		}
		switch field {
		case 6:
		case 7:
			out = binary.AppendUvarint(out, 6<<3|wire)
			out = append(out, req[i+n:end]...)
		default:
			out = append(out, req[i:end]...)
		}
		i = end
	}
	return out, nil
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	backend := flag.String("backend", "", "host:port every call is forwarded to")
	ident := flag.Bool("identity", false, "serve the identity ModelInfer model instead of forwarding")
	flag.Parse()
	if (*backend == "") == !*ident {
		log.Fatal("give exactly one of -backend and -identity")
	}
	var handler grpc.StreamHandler
	if *ident {
		handler = (&identity{}).handle
	} else {
		conn, err := grpc.Dial(*backend, grpc.WithInsecure(), grpc.WithDefaultCallOptions(
			grpc.ForceCodec(rawCodec{}), grpc.MaxCallRecvMsgSize(maxMessage), grpc.MaxCallSendMsgSize(maxMessage)))
		if err != nil {
			log.Fatal(err)
		}
		handler = (&forwarder{conn: conn}).handle
	}
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	options := []grpc.ServerOption{grpc.CustomCodec(rawCodec{}), grpc.UnknownServiceHandler(handler),
		grpc.MaxRecvMsgSize(maxMessage), grpc.MaxSendMsgSize(maxMessage)}
	if *ident {
		// The model must not bound the proxies in front of it: fewer WINDOW_UPDATEs
		// and syscalls per 64 KB message than grpc-go's defaults.
		options = append(options, grpc.InitialWindowSize(16<<20), grpc.InitialConnWindowSize(64<<20),
			grpc.ReadBufferSize(1<<20), grpc.WriteBufferSize(1<<20))
	}
	server := grpc.NewServer(options...)
	fmt.Printf("listening %s\nready\n", lis.Addr())
	os.Stdout.Sync()
	if err := server.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		log.Fatal(err)
	}
}
