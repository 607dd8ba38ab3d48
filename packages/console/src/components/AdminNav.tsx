import { Link } from '../router.js'

/** The admin's sections. */
export function AdminNav() {
  return (
    <nav aria-label="Admin" className="subnav">
      <ul>
        <li>
          <Link href="/admin">Tenants</Link>
        </li>
        <li>
          <Link href="/admin/migrations">Migrations</Link>
        </li>
        <li>
          <Link href="/admin/data-sources">Data sources</Link>
        </li>
      </ul>
    </nav>
  )
}
