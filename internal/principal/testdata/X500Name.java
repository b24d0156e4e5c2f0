import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import javax.security.auth.x500.X500Principal;

// Reads one hex-encoded DER subject name per line and prints, per line, the name as
// Apache Kafka's default principal builder renders it: X500Principal#getName() (RFC 2253).
// Non-ASCII output is written as \\uXXXX escapes so that no platform encoding is involved.
public class X500Name {
    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.US_ASCII));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            String name = new X500Principal(HexFormat.of().parseHex(line.trim())).getName();
            for (int i = 0; i < name.length(); i++) {
                char c = name.charAt(i);
                if (c < 0x20 || c > 0x7e || c == '%') {
                    out.append(String.format("%%%04x", (int) c));
                } else {
                    out.append(c);
                }
            }
            out.append('\n');
        }
        System.out.print(out);
    }
}
