package dev.beamllama.pipeline.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;

/**
 * Opens a report page in headless Chromium and reports, for every plot image, whether the browser
 * decoded it whole and how many of its pixels are in the data series' colour. A script appended to a copy
 * of the page draws each decoded image onto a canvas and counts; the result comes back in the
 * dumped DOM. A missing, undecodable, truncated or data-less plot all show here.
 *
 * <p>Without Chromium the calling test is skipped, saying why, unless BEAM_LLAMA_REQUIRE_CHROMIUM=1
 * (CI), where it fails.
 */
public final class ReportPageCheck {
  /** Pixels of the series colour a plot that draws its data has, at the least (a legend swatch alone has under 100). */
  public static final int MIN_SERIES_PIXELS = 300;

  private static final ObjectMapper JSON = new ObjectMapper();
  private static final List<String> CANDIDATES = List.of("chromium", "chromium-browser", "google-chrome");

  /** What the browser made of one plot image. */
  public record Rendered(String plot, boolean complete, int width, int height, long seriesPixels, long colours, long transparentPixels) {}

  private ReportPageCheck() {}

  /** The Chromium to use, or the test is skipped (or failed where Chromium is required). */
  public static Path chromiumOrSkip() {
    for (String dir : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
      for (String name : CANDIDATES) {
        Path candidate = Path.of(dir, name);
        if (Files.isExecutable(candidate)) {
          return candidate;
        }
      }
    }
    String why = "headless Chromium is not installed (apt-get install chromium), so the rendered report page is not checked";
    if ("1".equals(System.getenv("BEAM_LLAMA_REQUIRE_CHROMIUM"))) {
      fail(why + "; BEAM_LLAMA_REQUIRE_CHROMIUM=1 requires it");
    }
    System.err.println("SKIPPED: " + why);
    Assumptions.abort(why);
    return null;
  }

  /** Renders {@code page} in {@code chromium}; one entry per plot image, by plot id, in page order. */
  public static Map<String, Rendered> render(Path chromium, Path page, Path workDir) throws IOException, InterruptedException {
    String html = Files.readString(page, StandardCharsets.UTF_8);
    int end = html.lastIndexOf("</body>");
    assertTrue(end > 0, "the page has a body");
    Path probe = workDir.resolve("probe-" + page.getFileName());
    Files.writeString(probe, html.substring(0, end) + script() + html.substring(end), StandardCharsets.UTF_8);
    Path profile = Files.createDirectories(workDir.resolve("chromium-profile"));
    List<String> command = List.of(chromium.toString(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
        "--virtual-time-budget=5000", "--dump-dom", probe.toUri().toString());
    Path dom = workDir.resolve("dom.html");
    Path log = workDir.resolve("chromium.log");
    Process process = new ProcessBuilder(command).redirectOutput(dom.toFile()).redirectError(log.toFile()).start();
    if (!process.waitFor(120, TimeUnit.SECONDS)) {
      process.destroyForcibly();
      fail("chromium did not finish in 120 s: " + Files.readString(log));
    }
    assertEquals(0, process.exitValue(), () -> "chromium failed: " + readQuietly(log));
    Matcher m = Pattern.compile("<pre id=\"plot-check\">(.*?)</pre>", Pattern.DOTALL).matcher(Files.readString(dom, StandardCharsets.UTF_8));
    assertTrue(m.find(), () -> "the probe script did not run; chromium said: " + readQuietly(log));
    Map<String, Rendered> rendered = new LinkedHashMap<>();
    for (JsonNode r : JSON.readTree(m.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))) {
      rendered.put(r.get("plot").asText(), new Rendered(r.get("plot").asText(), r.get("complete").asBoolean(), r.get("width").asInt(),
          r.get("height").asInt(), r.get("series").asLong(), r.get("colours").asLong(), r.get("transparent").asLong()));
    }
    return rendered;
  }

  /** Asserts each plot of {@code expected} is in the page, decoded at the charts' size, and draws its data. */
  public static void assertPlotsRendered(Map<String, Rendered> rendered, List<String> expected) {
    assertEquals(expected, new ArrayList<>(rendered.keySet()), "the page's plot images");
    for (Rendered r : rendered.values()) {
      assertTrue(r.complete() && r.width() == ReportCharts.WIDTH && r.height() == ReportCharts.HEIGHT,
          r.plot() + " was not decoded at the chart's size: " + r);
      assertTrue(r.colours() > 10, r.plot() + " is blank: " + r);
      // The charts are opaque; a PNG cut short still decodes, its missing rows transparent.
      assertEquals(0, r.transparentPixels(), r.plot() + " is only partly decoded: " + r);
      assertTrue(r.seriesPixels() >= MIN_SERIES_PIXELS, r.plot() + " shows no data series: " + r);
    }
  }

  private static String script() {
    int rgb = ReportCharts.SERIES.getRGB() & 0xffffff;
    return """
        <script>
        window.addEventListener('load', function () {
          var results = [];
          document.querySelectorAll('img[data-plot]').forEach(function (img) {
            var r = {plot: img.dataset.plot, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, series: -1, colours: -1,
                transparent: -1};
            if (img.complete && img.naturalWidth > 0) {
              var canvas = document.createElement('canvas');
              canvas.width = img.naturalWidth;
              canvas.height = img.naturalHeight;
              var g = canvas.getContext('2d');
              g.drawImage(img, 0, 0);
              var d = g.getImageData(0, 0, canvas.width, canvas.height).data;
              var colours = new Set();
              var series = 0;
              var transparent = 0;
              for (var i = 0; i < d.length; i += 4) {
                if (d[i + 3] < 255) transparent++;
                var rgb = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
                colours.add(rgb);
                if (rgb === %d) series++;
              }
              r.series = series;
              r.colours = colours.size;
              r.transparent = transparent;
            }
            results.push(r);
          });
          var pre = document.createElement('pre');
          pre.id = 'plot-check';
          pre.textContent = JSON.stringify(results);
          document.body.appendChild(pre);
        });
        </script>
        """.formatted(rgb);
  }

  private static String readQuietly(Path file) {
    try {
      return Files.readString(file);
    } catch (IOException e) {
      return "(no log: " + e + ")";
    }
  }
}
