// Sanitizer build only (-DTCEMU_SANITIZE=ON): linked into every program that links SystemC (top-level
// CMakeLists.txt, tcemu_systemc).
//
// SystemC runs each SC_THREAD on a coroutine stack of its own, and Debian's SystemC 2.3.4 tells ASan about
// every switch: sc_cor_pkg_qt::yield() calls __sanitizer_start_switch_fiber (a weak symbol that ASan's
// runtime defines) with the stack of the coroutine it switches to. The main coroutine is the host thread's
// own stack, which SystemC did not allocate and has no bounds for, so a switch back to it is announced as a
// stack of (nullptr, 0). From then on ASan believes the thread runs on an empty stack, and when an exception
// is thrown on it (a device fault reported to the host, a test's EXPECT_THROW) __asan_handle_no_return
// refuses to clear the poison of the frames the exception unwinds ("ASan is ignoring requested
// __asan_handle_no_return: stack type: default top: 0x000000000000"). That stale poison is then reported as
// stack-buffer-overflow or stack-use-after-scope in whatever code reuses those stack bytes, and LeakSanitizer
// can deadlock in its symbolizer while such a report is printed during its exit-time check.
//
// The executable's definition comes first in symbol lookup, so libsystemc's calls land here: a switch to
// (nullptr, 0) gets the calling thread's real stack, and every switch then goes on to ASan's own function.
#include <dlfcn.h>
#include <pthread.h>

#include <cstddef>

extern "C" void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size) {
  using Fn = void (*)(void**, const void*, size_t);
  static const Fn asan = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "__sanitizer_start_switch_fiber"));
  if (bottom == nullptr && size == 0) {
    // Found once per thread, while still on a coroutine stack: pthread_getattr_np describes the thread's own
    // stack wherever the caller runs.
    thread_local void* thread_bottom = nullptr;
    thread_local size_t thread_size = 0;
    if (thread_bottom == nullptr) {
      pthread_attr_t attr;
      if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &thread_bottom, &thread_size);
        pthread_attr_destroy(&attr);
      }
    }
    bottom = thread_bottom;
    size = thread_size;
  }
  if (asan) asan(fake_stack_save, bottom, size);
}
