// peak_rss COMMAND [ARGS...]: runs COMMAND and prints its peak resident memory in KiB.
// A direct child of a large test process inherits that process's high-water mark (vfork and
// exec keep it), so the memory tests measure through this small program.
#include <cstdio>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 2)
    return 2;
  pid_t pid = ::fork();
  if (pid < 0)
    return 2;
  if (pid == 0) {
    ::execv(argv[1], argv + 1);
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) != pid)
    return 2;
  std::printf("%ld\n", usage.ru_maxrss);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}
