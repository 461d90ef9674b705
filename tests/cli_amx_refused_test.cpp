// When the OS refuses the AMX tile state, g3n must run without it: `g3n bench` in a child whose seccomp filter
// answers arch_prctl(ARCH_REQ_XCOMP_PERM) with EPERM (as an older kernel, a hypervisor or a container policy
// would) reports `amx-refused-by-os` on an AMX CPU, picks a set without tiles, and computes normally. On a CPU
// without AMX the filter changes nothing and the run is the same plain one.
#include <gtest/gtest.h>

#if defined(__x86_64__) && defined(__linux__)
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_util.h"
#include "kernels/cpu_features.h"

namespace g3n {
namespace {

using test::kG3n;
using test::run_capture;

// Runs argv with arch_prctl(0x1023, ...) refused; returns its stdout, status in `status`.
std::string run_with_amx_refused(const std::vector<std::string>& args, int& status) {
  int fd[2];
  if (pipe(fd) != 0) return "";
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_arch_prctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, args[0])),  // low half (little-endian)
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x1023, 0, 1),                    // ARCH_REQ_XCOMP_PERM
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) _exit(97);
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(98);
  }
  close(fd[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd[0], buf, sizeof buf)) > 0) out.append(buf, size_t(n));
  close(fd[0]);
  waitpid(pid, &status, 0);
  return out;
}

TEST(CliAmx, RefusedTileStateFallsBack) {
  const std::string model = std::string(G3N_BINARY_DIR) + "/cli-amx-tiny.gguf";
  int status = -1;
  const std::string log = run_capture(kG3n + " create-random " + model + " --preset tiny --quant q4_k_m 2>&1", status);
  ASSERT_EQ(status, 0) << log;
  const std::vector<std::string> bench = {kG3n, "bench", model, "--prompt", "40", "--gen", "4", "--repeats", "1",
                                          "--threads", "2", "--no-rss-baseline", "--json"};
  const std::string out = run_with_amx_refused(bench, status);
  ASSERT_TRUE(WIFEXITED(status)) << "signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  if (WEXITSTATUS(status) == 97) GTEST_SKIP() << "this environment does not let a process install a seccomp filter";
  ASSERT_EQ(WEXITSTATUS(status), 0) << out;
  const auto j = nlohmann::json::parse(out);
  const std::string set = j.at("kernels").at("set"), features = j.at("kernels").at("cpu_features");
  std::printf("  refused: set %s, cpu %s\n", set.c_str(), features.c_str());
  EXPECT_NE(set, "avx512vnni+amx");
  EXPECT_EQ(features.find("amx-int8"), std::string::npos);
  if (cpu_features().amx_int8) {
    EXPECT_NE(features.find("amx-refused-by-os"), std::string::npos);
  }
  EXPECT_GT(j.at("prompt_tokens_per_s").get<double>(), 0.0);
  // The same run with the tile state granted takes the tiles where the CPU has them: the filter made the difference.
  const std::string plain = run_capture(kG3n + " bench " + model + " --prompt 40 --gen 4 --repeats 1 --threads 2 "
                                                                    "--no-rss-baseline --json 2>/dev/null",
                                        status);
  ASSERT_EQ(status, 0) << plain;
  const std::string granted = nlohmann::json::parse(plain).at("kernels").at("set");
  std::printf("  granted: set %s\n", granted.c_str());
  if (cpu_features().amx_int8) {
    EXPECT_EQ(granted, "avx512vnni+amx");
  }
}

}  // namespace
}  // namespace g3n

#endif
