# Order arithmetic shared by the flows: `import "orders" as o;`.

# lines: the order lines the backend wants.
def lines: map({sku, qty});

# total: the order's total price, rounded to cents.
def total: (map(.price * .qty) | add) * 100 | round / 100;
