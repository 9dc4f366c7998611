# Declarations of ext/h2/server.pyx, and the part of libnghttp2's API it uses.
from libc.stdint cimport int32_t, uint8_t, uint32_t


cdef extern from "nghttp2/nghttp2.h" nogil:
    ctypedef struct nghttp2_session:
        pass
    ctypedef struct nghttp2_session_callbacks:
        pass
    ctypedef struct nghttp2_option:
        pass

    ctypedef struct nghttp2_frame_hd:
        size_t length
        int32_t stream_id
        uint8_t type
        uint8_t flags

    ctypedef struct nghttp2_data:
        nghttp2_frame_hd hd
        size_t padlen

    ctypedef struct nghttp2_headers:
        nghttp2_frame_hd hd
        size_t padlen
        int cat

    ctypedef struct nghttp2_rst_stream:
        nghttp2_frame_hd hd
        uint32_t error_code

    ctypedef struct nghttp2_ping:
        nghttp2_frame_hd hd
        uint8_t opaque_data[8]

    ctypedef struct nghttp2_goaway:
        nghttp2_frame_hd hd
        int32_t last_stream_id
        uint32_t error_code

    ctypedef union nghttp2_frame:
        nghttp2_frame_hd hd
        nghttp2_data data
        nghttp2_headers headers
        nghttp2_rst_stream rst_stream
        nghttp2_ping ping
        nghttp2_goaway goaway

    ctypedef union nghttp2_data_source:
        int fd
        void *ptr

    ctypedef ssize_t (*nghttp2_data_source_read_callback)(
        nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
        uint32_t *data_flags, nghttp2_data_source *source, void *user_data)

    ctypedef struct nghttp2_data_provider:
        nghttp2_data_source source
        nghttp2_data_source_read_callback read_callback

    ctypedef struct nghttp2_nv:
        uint8_t *name
        uint8_t *value
        size_t namelen
        size_t valuelen
        uint8_t flags

    ctypedef struct nghttp2_settings_entry:
        int32_t settings_id
        uint32_t value

    ctypedef ssize_t (*nghttp2_send_callback)(
        nghttp2_session *session, const uint8_t *data, size_t length, int flags, void *user_data)
    ctypedef int (*nghttp2_send_data_callback)(
        nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd, size_t length,
        nghttp2_data_source *source, void *user_data)
    ctypedef int (*nghttp2_on_frame_recv_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
    ctypedef int (*nghttp2_on_data_chunk_recv_callback)(
        nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
        size_t len, void *user_data)
    ctypedef int (*nghttp2_on_stream_close_callback)(
        nghttp2_session *session, int32_t stream_id, uint32_t error_code, void *user_data)
    ctypedef int (*nghttp2_on_begin_headers_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
    ctypedef int (*nghttp2_on_header_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
    ctypedef int (*nghttp2_on_frame_send_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
    ctypedef int (*nghttp2_on_invalid_header_callback)(
        nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *user_data)
    ctypedef ssize_t (*nghttp2_data_source_read_length_callback)(
        nghttp2_session *session, uint8_t frame_type, int32_t stream_id,
        int32_t session_remote_window_size, int32_t stream_remote_window_size,
        uint32_t remote_max_frame_size, void *user_data)

    enum:
        NGHTTP2_ERR_WOULDBLOCK
        NGHTTP2_ERR_DEFERRED
        NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
        NGHTTP2_ERR_CALLBACK_FAILURE
        NGHTTP2_DATA_FLAG_NONE
        NGHTTP2_DATA_FLAG_EOF
        NGHTTP2_DATA_FLAG_NO_END_STREAM
        NGHTTP2_DATA_FLAG_NO_COPY
        NGHTTP2_NV_FLAG_NONE
        NGHTTP2_NV_FLAG_NO_COPY_NAME
        NGHTTP2_NV_FLAG_NO_COPY_VALUE
        NGHTTP2_FLAG_NONE
        NGHTTP2_FLAG_END_STREAM
        NGHTTP2_FLAG_END_HEADERS
        NGHTTP2_FLAG_ACK
        NGHTTP2_DATA
        NGHTTP2_HEADERS
        NGHTTP2_RST_STREAM
        NGHTTP2_SETTINGS
        NGHTTP2_PING
        NGHTTP2_GOAWAY
        NGHTTP2_HCAT_REQUEST
        NGHTTP2_HCAT_HEADERS
        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
        NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE
        NGHTTP2_NO_ERROR
        NGHTTP2_PROTOCOL_ERROR
        NGHTTP2_INTERNAL_ERROR
        NGHTTP2_REFUSED_STREAM
        NGHTTP2_CANCEL
        NGHTTP2_ENHANCE_YOUR_CALM

    int nghttp2_session_callbacks_new(nghttp2_session_callbacks **callbacks_ptr)
    void nghttp2_session_callbacks_del(nghttp2_session_callbacks *callbacks)
    void nghttp2_session_callbacks_set_send_callback(nghttp2_session_callbacks *cbs, nghttp2_send_callback cb)
    void nghttp2_session_callbacks_set_send_data_callback(nghttp2_session_callbacks *cbs, nghttp2_send_data_callback cb)
    void nghttp2_session_callbacks_set_on_frame_recv_callback(nghttp2_session_callbacks *cbs, nghttp2_on_frame_recv_callback cb)
    void nghttp2_session_callbacks_set_on_data_chunk_recv_callback(nghttp2_session_callbacks *cbs, nghttp2_on_data_chunk_recv_callback cb)
    void nghttp2_session_callbacks_set_on_stream_close_callback(nghttp2_session_callbacks *cbs, nghttp2_on_stream_close_callback cb)
    void nghttp2_session_callbacks_set_on_begin_headers_callback(nghttp2_session_callbacks *cbs, nghttp2_on_begin_headers_callback cb)
    void nghttp2_session_callbacks_set_on_header_callback(nghttp2_session_callbacks *cbs, nghttp2_on_header_callback cb)
    void nghttp2_session_callbacks_set_on_frame_send_callback(nghttp2_session_callbacks *cbs, nghttp2_on_frame_send_callback cb)
    void nghttp2_session_callbacks_set_on_invalid_header_callback(nghttp2_session_callbacks *cbs,
                                                                  nghttp2_on_invalid_header_callback cb)
    void nghttp2_session_callbacks_set_data_source_read_length_callback(
        nghttp2_session_callbacks *cbs, nghttp2_data_source_read_length_callback cb)

    int nghttp2_option_new(nghttp2_option **option_ptr)
    void nghttp2_option_del(nghttp2_option *option)
    void nghttp2_option_set_no_auto_window_update(nghttp2_option *option, int val)
    void nghttp2_option_set_max_outbound_ack(nghttp2_option *option, size_t val)

    int nghttp2_session_server_new2(nghttp2_session **session_ptr, const nghttp2_session_callbacks *callbacks,
                                    void *user_data, const nghttp2_option *option)
    void nghttp2_session_del(nghttp2_session *session)
    ssize_t nghttp2_session_mem_recv(nghttp2_session *session, const uint8_t *data, size_t datalen)
    int nghttp2_session_send(nghttp2_session *session)
    int nghttp2_session_want_read(nghttp2_session *session)
    int nghttp2_session_want_write(nghttp2_session *session)
    int nghttp2_session_consume(nghttp2_session *session, int32_t stream_id, size_t size)
    int nghttp2_session_consume_connection(nghttp2_session *session, size_t size)
    int nghttp2_session_resume_data(nghttp2_session *session, int32_t stream_id)
    int nghttp2_session_set_local_window_size(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                                              int32_t window_size)
    int nghttp2_session_set_stream_user_data(nghttp2_session *session, int32_t stream_id, void *stream_user_data)
    void *nghttp2_session_get_stream_user_data(nghttp2_session *session, int32_t stream_id)
    int32_t nghttp2_session_get_last_proc_stream_id(nghttp2_session *session)
    int nghttp2_session_terminate_session(nghttp2_session *session, uint32_t error_code)

    int nghttp2_submit_settings(nghttp2_session *session, uint8_t flags, const nghttp2_settings_entry *iv, size_t niv)
    int nghttp2_submit_response(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva,
                                size_t nvlen, const nghttp2_data_provider *data_prd)
    int nghttp2_submit_trailer(nghttp2_session *session, int32_t stream_id, const nghttp2_nv *nva, size_t nvlen)
    int nghttp2_submit_rst_stream(nghttp2_session *session, uint8_t flags, int32_t stream_id, uint32_t error_code)
    int nghttp2_submit_ping(nghttp2_session *session, uint8_t flags, const uint8_t *opaque_data)
    int nghttp2_submit_shutdown_notice(nghttp2_session *session)
    int nghttp2_submit_goaway(nghttp2_session *session, uint8_t flags, int32_t last_stream_id,
                              uint32_t error_code, const uint8_t *opaque_data, size_t opaque_data_len)
    const char *nghttp2_strerror(int lib_error_code)


cdef class H2Stream:
    cdef readonly int32_t id
    cdef H2Connection conn
    cdef readonly bytes path
    cdef readonly list metadata         # [(bytes, bytes)]: the request's headers bar the reserved ones
    cdef readonly double timeout        # grpc-timeout in seconds; 0: none
    cdef readonly double received       # when its headers ended
    cdef readonly object message        # the (one) request message, bytes, once complete
    cdef readonly Py_ssize_t bytes_in
    cdef bint post
    cdef bint grpc_type                 # content-type application/grpc[+...|;...]
    cdef bint te_ok
    cdef bint bad_timeout
    cdef bint compressed                # grpc-encoding other than identity
    cdef Py_ssize_t head_bytes
    # the message being received: the prefix, then the body filled in place
    cdef unsigned char prefix[5]
    cdef int prefix_len
    cdef Py_ssize_t msg_len
    cdef Py_ssize_t msg_filled
    cdef object msg_buf
    cdef int nmessages
    cdef bint ended                     # the client's END_STREAM
    cdef bint discard                   # answered early: further DATA is dropped
    cdef bint closed
    cdef bint answered                  # HEADERS submitted
    # the answer: queued message buffers, then trailers
    cdef list out
    cdef Py_ssize_t out_off             # into out[0]
    cdef Py_ssize_t out_len
    cdef bint out_done
    cdef bint deferred                  # the data source ran dry (a server stream between messages)
    cdef int status_code
    cdef bytes status_message
    # what the application hangs on the stream
    cdef public object flow
    cdef public object ctx
    cdef public object request
    cdef public int rpc

    cdef int take(self, const unsigned char *p, Py_ssize_t n) except -1
    cdef int respond(self) except -1
    cdef Py_ssize_t queue_message(self, object chunks, bint send=*) except -1
    cdef int reset(self, uint32_t error_code) except -1
    cdef int http_error(self, int status, bytes text) except -1
    cdef int finish(self, int code, str message) except -1
    cdef int fail(self, int code, str message) except -1
    cdef void wake(self)


cdef class H2Handler:
    cdef readonly Py_ssize_t max_message_size
    cdef int on_request(self, H2Stream s) except -1
    cdef int on_end(self, H2Stream s) except -1
    cdef int on_close(self, H2Stream s, uint32_t error_code) except -1


cdef class H2Server:
    cdef readonly H2Handler handler
    cdef set connections
    cdef readonly bint draining
    cdef readonly double handshake_timeout
    cdef object drained
    cdef void connection_gone(self, H2Connection conn)


cdef class H2Connection:
    cdef H2Server server
    cdef H2Handler handler
    cdef nghttp2_session *session
    cdef object transport
    cdef object loop
    cdef dict streams
    cdef ByteBuf outbuf
    cdef list wlist
    cdef Py_ssize_t budget
    cdef bint busy
    cdef bint closed
    cdef bint writing_paused
    cdef bint drain_ping_sent
    cdef bint goaway_sent
    cdef bint heard                     # the peer has sent something
    cdef object timer
    cdef object error

    cdef int pump(self) except -1
    cdef int flush_out(self) except -1
    cdef int start_drain(self) except -1
    cdef int final_goaway(self) except -1
    cdef int abort(self) except -1
