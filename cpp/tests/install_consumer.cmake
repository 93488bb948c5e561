# ctest's vgpt_install_consumer: `cmake --install` into a fresh prefix, then build examples/cpp on its own
# against it with find_package(vgpt) (as a ROS 2 package would), and run vgpt_minimal on the tiny bundle.
#   cmake -DBUILD=<build dir> -DSOURCE=<source dir> -DFIXTURES=<fixture dir> -P install_consumer.cmake
set(root "${BUILD}/consumer-test")
file(REMOVE_RECURSE "${root}")
function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
run("${CMAKE_COMMAND}" --install "${BUILD}" --prefix "${root}/prefix")
run("${CMAKE_COMMAND}" -S "${SOURCE}/examples/cpp" -B "${root}/build" "-DCMAKE_PREFIX_PATH=${root}/prefix"
    -DCMAKE_BUILD_TYPE=Release)
run("${CMAKE_COMMAND}" --build "${root}/build" --target vgpt_minimal)

file(READ "${FIXTURES}/fixtures.json" index)
string(JSON bundle GET "${index}" tiny bundle)
string(JSON frames GET "${index}" tiny observe file)
string(JSON height GET "${index}" tiny observe shape 1)
string(JSON width GET "${index}" tiny observe shape 2)
run("${root}/build/vgpt_minimal" "${bundle}" "${FIXTURES}/${frames}" ${width} ${height} "${root}/out.rgb" 2)
file(SIZE "${root}/out.rgb" bytes)
# 2 clips of the tiny layout (G=2 frames of 32x32 RGB8): 2 * 2 * 32 * 32 * 3 bytes.
if(NOT bytes EQUAL 12288)
  message(FATAL_ERROR "vgpt_minimal wrote ${bytes} bytes, expected 12288")
endif()
