// JDBC against `cxr serve`: DatabaseMetaData lists tables and columns, a
// PreparedStatement with parameters runs. Prints what it found; the Rust test checks.
import java.sql.*;

public class JdbcCheck {
    interface Call {
        ResultSet run(DatabaseMetaData meta) throws SQLException;
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/cxr";
        try (Connection c = DriverManager.getConnection(url, "cxr", "")) {
            DatabaseMetaData meta = c.getMetaData();
            try (ResultSet r = meta.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (r.next()) {
                    System.out.println("table: " + r.getString("TABLE_NAME"));
                }
            }
            try (ResultSet r = meta.getColumns(null, null, "images", "%")) {
                while (r.next()) {
                    System.out.println("column: images." + r.getString("COLUMN_NAME") + " " + r.getString("TYPE_NAME"));
                }
            }
            try (ResultSet r = meta.getTables(null, null, "%", new String[] {"VIEW"})) {
                while (r.next()) {
                    System.out.println("view: " + r.getString("TABLE_NAME"));
                }
            }
            // What a tool reads of a table beside its columns: each call answers, and
            // the Rust test checks the number of rows.
            Object[][] calls = {
                {"primaryKeys", (Call) d -> d.getPrimaryKeys(null, null, "images")},
                {"importedKeys", (Call) d -> d.getImportedKeys(null, null, "images")},
                {"exportedKeys", (Call) d -> d.getExportedKeys(null, null, "images")},
                {"indexInfo", (Call) d -> d.getIndexInfo(null, null, "images", false, true)},
                {"bestRowIdentifier", (Call) d -> d.getBestRowIdentifier(null, null, "images", DatabaseMetaData.bestRowSession, true)},
                {"procedures", (Call) d -> d.getProcedures(null, null, "%")},
                {"functions", (Call) d -> d.getFunctions(null, null, "%")},
                {"typeInfo", (Call) d -> d.getTypeInfo()},
                {"tablePrivileges", (Call) d -> d.getTablePrivileges(null, null, "images")},
                {"columnPrivileges", (Call) d -> d.getColumnPrivileges(null, null, "images", "%")},
            };
            for (Object[] call : calls) {
                try (ResultSet r = ((Call) call[1]).run(meta)) {
                    int n = 0;
                    while (r.next()) n++;
                    System.out.println(call[0] + ": " + n + " rows");
                }
            }
            System.out.println("user: " + meta.getUserName());
            String sql = "SELECT count(*) FROM images WHERE sex = ? AND view_position = ? AND age > ?";
            try (PreparedStatement p = c.prepareStatement(sql)) {
                // Run six times: pgjdbc switches to a named server-side statement and
                // binary results after five.
                long n = -1;
                for (int i = 0; i < 6; i++) {
                    p.setString(1, "F");
                    p.setString(2, "PA");
                    p.setInt(3, 60);
                    try (ResultSet r = p.executeQuery()) {
                        r.next();
                        long now = r.getLong(1);
                        if (n >= 0 && now != n) throw new AssertionError("changed: " + n + " " + now);
                        n = now;
                    }
                }
                System.out.println("prepared: " + n);
            }
            try (PreparedStatement p = c.prepareStatement("SELECT n_labels FROM images WHERE image_index = ?")) {
                int labels = -1;
                for (int i = 0; i < 6; i++) {
                    p.setString(1, "00000001_001.png");
                    try (ResultSet r = p.executeQuery()) {
                        r.next();
                        int now = r.getInt(1);
                        if (labels >= 0 && now != labels) throw new AssertionError("changed: " + labels + " " + now);
                        labels = now;
                    }
                }
                System.out.println("n_labels: " + labels);
            }
            // setDate and setTime send the value untyped with a zone ("2021-03-04 +00"),
            // which a cast to date or time reads as PostgreSQL does.
            try (PreparedStatement p = c.prepareStatement("SELECT ?::date, ?::time")) {
                p.setDate(1, java.sql.Date.valueOf("2021-03-04"));
                p.setTime(2, java.sql.Time.valueOf("05:06:07"));
                try (ResultSet r = p.executeQuery()) {
                    r.next();
                    System.out.println("date: " + r.getDate(1) + " time: " + r.getTime(2));
                }
            }
        }
    }
}
