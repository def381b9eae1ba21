# System libraries, installed by name from Debian (see scripts/install-deps).
find_package(Threads REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(fmt REQUIRED)
find_package(PkgConfig)  # optional: the GPU box may lack pkg-config
# PCRE2 and utf8proc are linked statically so that a binary built here runs on a box without them.
find_library(PCRE2_STATIC NAMES libpcre2-8.a pcre2-8 REQUIRED)
find_path(PCRE2_INCLUDE_DIR pcre2.h REQUIRED)
find_library(UTF8PROC_STATIC NAMES libutf8proc.a utf8proc REQUIRED)
find_path(UTF8PROC_INCLUDE_DIR utf8proc.h REQUIRED)
add_library(roofline_pcre2 INTERFACE)
target_link_libraries(roofline_pcre2 INTERFACE ${PCRE2_STATIC})
target_include_directories(roofline_pcre2 INTERFACE ${PCRE2_INCLUDE_DIR})
target_compile_definitions(roofline_pcre2 INTERFACE PCRE2_CODE_UNIT_WIDTH=8 PCRE2_STATIC)
add_library(roofline_utf8proc INTERFACE)
target_link_libraries(roofline_utf8proc INTERFACE ${UTF8PROC_STATIC})
target_include_directories(roofline_utf8proc INTERFACE ${UTF8PROC_INCLUDE_DIR})
target_compile_definitions(roofline_utf8proc INTERFACE UTF8PROC_STATIC)
