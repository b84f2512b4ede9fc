/* LD_PRELOAD helper that tools/sge.sh builds and starts Grid Engine's daemons with.
 *
 * sge_qmaster and sge_execd bind their ports (6444, 6445) to every interface and have no
 * option to choose one. This turns an IPv4 bind() to INADDR_ANY into a bind() to 127.0.0.1, so
 * they listen on loopback only. It acts only in programs named sge_* and removes itself from
 * their LD_PRELOAD at load time, so the programs the daemons start (shepherds, jobs) run
 * without it; the init scripts and wrappers on the way pass it on untouched.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h> /* program_invocation_short_name */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_function)(int, const struct sockaddr *, socklen_t);

static int in_daemon;

__attribute__((constructor)) static void forget_preload(void) {
    in_daemon = strncmp(program_invocation_short_name, "sge_", 4) == 0;
    if (in_daemon) {
        unsetenv("LD_PRELOAD");
    }
}

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_function real_bind;
    if (real_bind == NULL) {
        real_bind = (bind_function)dlsym(RTLD_NEXT, "bind");
    }
    if (in_daemon && addr != NULL && addr->sa_family == AF_INET &&
        len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in loopback;
        memcpy(&loopback, addr, sizeof loopback);
        if (loopback.sin_addr.s_addr == htonl(INADDR_ANY)) {
            loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&loopback, sizeof loopback);
        }
    }
    return real_bind(fd, addr, len);
}
