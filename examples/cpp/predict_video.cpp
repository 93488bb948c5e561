// A video in, its predicted continuation out, with OpenCV for the video files.
//
//   vgpt_predict_video BUNDLE IN.mp4 OUT.mp4 [NUM_CLIPS]
//
// Observes every frame of IN.mp4 (BGR, any size) and writes the NUM_CLIPS * G predicted frames.
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>
#include <cstdlib>

#include "vgpt/vgpt.hpp"

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s BUNDLE IN.mp4 OUT.mp4 [NUM_CLIPS]\n", argv[0]);
        return 2;
    }
    try {
        vgpt::Model model(argv[1]);
        vgpt::Stream stream(model, 0);
        cv::VideoCapture in(argv[2]);
        if (!in.isOpened()) throw std::runtime_error(std::string("cannot open ") + argv[2]);
        const double fps = in.get(cv::CAP_PROP_FPS) > 0 ? in.get(cv::CAP_PROP_FPS) : 10.0;
        cv::Mat frame;
        for (int64_t i = 0; in.read(frame); ++i) {
            stream.observe(frame.data, frame.cols, frame.rows, frame.step, VGPT_PIXEL_BGR8, i);
        }
        vgpt_prediction p = stream.predict(argc > 4 ? std::atoi(argv[4]) : 1);
        cv::VideoWriter out(argv[3], cv::VideoWriter::fourcc('m', 'p', '4', 'v'), fps, cv::Size(p.width, p.height));
        for (int f = 0; f < p.num_frames; ++f) {
            cv::Mat rgb(p.height, p.width, CV_8UC3, const_cast<uint8_t*>(p.frames) + size_t(f) * p.width * p.height * 3);
            cv::Mat bgr;
            cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
            out.write(bgr);
        }
        std::printf("wrote %d frames to %s\n", p.num_frames, argv[3]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
