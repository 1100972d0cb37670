/*
 * zmq_burst.c - a PUSH peer for test_zmq_e2e.py that sends as fast as
 * libzmq allows and then disconnects at once, faster than Python can:
 *   zmq_burst ENDPOINT N KEYS
 * sends N msgpack maps {"k": "k<i % KEYS>", "i": i}, then "END", closes
 * with an infinite linger and exits. Prints the seconds taken.
 */
#define _POSIX_C_SOURCE 200809L

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <zmq.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: zmq_burst ENDPOINT N KEYS\n");
        return 2;
    }
    long n = atol(argv[2]), keys = atol(argv[3]);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_PUSH);
    int forever = -1;
    if (!s || zmq_connect(s, argv[1]) < 0 || keys <= 0) {
        fprintf(stderr, "zmq_burst: %s\n", zmq_strerror(zmq_errno()));
        return 1;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "k%ld", i % keys);
        sb.size = 0;
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "k", 1);
        msgpack_pack_str_with_body(&pk, k, (size_t)kl);
        msgpack_pack_str_with_body(&pk, "i", 1);
        msgpack_pack_int64(&pk, i);
        if (zmq_send(s, sb.data, sb.size, 0) < 0)
            return 1;
    }
    zmq_send(s, "END", 3, 0);
    zmq_setsockopt(s, ZMQ_LINGER, &forever, sizeof forever);
    zmq_close(s);
    zmq_ctx_term(ctx);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%.3f\n", (double)(t1.tv_sec - t0.tv_sec) +
                         (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
