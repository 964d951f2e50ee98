# Warnings and sanitizer flags for the project's own targets (tests, benches, examples).
# Consumers of the INTERFACE target get none of this.
add_library(bifrost_dev_flags INTERFACE)
target_compile_options(bifrost_dev_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wold-style-cast -Wcast-align)
if(BIFROST_SANITIZE STREQUAL "thread")
    # TSan does not model fences; ours only order atomics (Dekker-style wake-ups), so the
    # warning says nothing about them.
    target_compile_options(bifrost_dev_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer
        $<$<CXX_COMPILER_ID:GNU>:-Wno-tsan>)
    target_link_options(bifrost_dev_flags INTERFACE -fsanitize=thread)
elseif(BIFROST_SANITIZE STREQUAL "address")
    target_compile_options(bifrost_dev_flags INTERFACE -fsanitize=address,undefined
        -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(bifrost_dev_flags INTERFACE -fsanitize=address,undefined)
elseif(NOT BIFROST_SANITIZE STREQUAL "")
    message(FATAL_ERROR "BIFROST_SANITIZE must be '', 'thread' or 'address'")
endif()
