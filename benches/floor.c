/* The kernel's floor for the scan benchmark: the least a walk can do on this machine.

   floor stat THREADS ROOT   every folder read (getdents64) and every entry stat'ed by
                             name (fstatat on the folder's fd), as a scan's walk must do
   floor read THREADS ROOT   every folder read, and every regular file (as the folder's
                             entry types tell) opened, fstat'ed, read whole, fstat'ed
                             again and closed: what hashing needs, without the hashing
                             (a scan that reads every file takes each one's stat from the
                             open file: one lookup of its name, where a stat by name and
                             an open take two)

   THREADS workers share one stack of folders. Prints "files bytes" when done. Built and
   run by bench_scan.py (cc -O2 -pthread); it stores nothing, so it is a floor for the
   work a scan cannot avoid, not a tool. */

#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t more = PTHREAD_COND_INITIALIZER;
static char **stack;
static size_t depth, cap;
static int busy; /* workers holding a folder: the walk ends when none is and the stack is empty */
static int reading;
static uint64_t total_files, total_bytes;

static void push(char *path) {
    pthread_mutex_lock(&lock);
    if (depth == cap) {
        cap = cap ? cap * 2 : 1024;
        stack = realloc(stack, cap * sizeof *stack);
        if (!stack) abort();
    }
    stack[depth++] = path;
    pthread_cond_signal(&more);
    pthread_mutex_unlock(&lock);
}

static char *pop(void) {
    pthread_mutex_lock(&lock);
    busy--;
    while (depth == 0 && busy > 0) pthread_cond_wait(&more, &lock);
    char *p = NULL;
    if (depth > 0) {
        p = stack[--depth];
        busy++;
    } else {
        pthread_cond_broadcast(&more);
    }
    pthread_mutex_unlock(&lock);
    return p;
}

static void visit(const char *dir, uint64_t *files, uint64_t *bytes, char *buf, size_t bufsize) {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return;
    char ents[32768];
    for (;;) {
        long n = syscall(SYS_getdents64, dfd, ents, sizeof ents);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(ents + off);
            off += e->d_reclen;
            const char *name = e->d_name;
            if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) continue;
            struct stat st;
            if (reading && e->d_type == DT_REG) {
                int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
                if (fd < 0) fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0) continue;
                if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
                    (*files)++;
                    *bytes += (uint64_t)st.st_size;
                    for (off_t left = st.st_size; left > 0;) {
                        ssize_t got = read(fd, buf, left < (off_t)bufsize ? (size_t)left : bufsize);
                        if (got <= 0) break;
                        left -= got;
                    }
                    fstat(fd, &st); /* a scan's check that it did not change as it was read */
                }
                close(fd);
                continue;
            }
            if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            if (S_ISDIR(st.st_mode)) {
                size_t len = strlen(dir) + strlen(name) + 2;
                char *sub = malloc(len);
                snprintf(sub, len, "%s/%s", dir, name);
                push(sub);
            } else if (S_ISREG(st.st_mode)) {
                (*files)++;
                *bytes += (uint64_t)st.st_size;
                if (reading) { /* a file system that gives no entry types */
                    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
                    if (fd < 0) fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                    if (fd >= 0) {
                        while (read(fd, buf, bufsize) > 0) {
                        }
                        close(fd);
                    }
                }
            }
        }
    }
    close(dfd);
}

static void *worker(void *arg) {
    (void)arg;
    uint64_t files = 0, bytes = 0;
    size_t bufsize = 1 << 20;
    char *buf = malloc(bufsize);
    char *dir;
    while ((dir = pop()) != NULL) {
        visit(dir, &files, &bytes, buf, bufsize);
        free(dir);
    }
    free(buf);
    pthread_mutex_lock(&lock);
    total_files += files;
    total_bytes += bytes;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4 || (strcmp(argv[1], "stat") && strcmp(argv[1], "read"))) {
        fprintf(stderr, "usage: floor stat|read THREADS ROOT\n");
        return 2;
    }
    reading = !strcmp(argv[1], "read");
    int threads = atoi(argv[2]);
    if (threads < 1) threads = 1;
    busy = threads; /* each worker starts by giving up its (empty) hold in pop() */
    push(strdup(argv[3]));
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    printf("%llu %llu\n", (unsigned long long)total_files, (unsigned long long)total_bytes);
    return 0;
}
